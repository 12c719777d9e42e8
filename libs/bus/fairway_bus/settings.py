"""How a Fairway process authenticates to NATS and encrypts its connection: one settings class
every service (through `ServiceSettings`) and the bus bootstrap share, so a NATS server that
requires credentials or TLS is reached the same way by all of them.

One way to authenticate at most: user and password (also possible inside NATS_URL as
`nats://user:password@host:4222`), a token, an NKey seed file, or a credentials (JWT) file.
TLS is on when a CA file or client certificate is given, or the URL's scheme is `tls://`.
"""

import ssl
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from faststream.nats import NatsSecurity
from faststream.nats.security import NatsCredentials, NatsNKey, NatsToken, NatsUserPassword
from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def nats_servers(url: str) -> list[str]:
    """The servers NATS_URL names: one URL, or several separated by commas (the servers of one
    cluster, so a client that starts while one of them is down connects to another).

    Raises ValueError naming the entry that is not a `nats://` or `tls://` URL with a host."""
    servers = [part.strip() for part in url.split(",")]
    for server in servers:
        # As the NATS client does, a bare host:port means nats://host:port.
        parts = urlsplit(server if "//" in server else f"nats://{server}")
        if parts.scheme not in ("nats", "tls") or not parts.hostname:
            raise ValueError(
                f"NATS_URL: {server!r} is not a NATS server URL (nats://host:port or "
                "tls://host:port; several are separated by commas)")
        try:
            parts.port  # noqa: B018 - raises on a port that is not a number
        except ValueError:
            raise ValueError(f"NATS_URL: {server!r} has a port that is not a number") from None
    return servers


class NatsClientSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", populate_by_name=True)

    nats_user: str | None = Field(
        default=None, alias="FAIRWAY_NATS_USER",
        description="user name for NATS (with FAIRWAY_NATS_PASSWORD); unset: no user")
    nats_password: SecretStr | None = Field(
        default=None, alias="FAIRWAY_NATS_PASSWORD",
        description="password of FAIRWAY_NATS_USER")
    nats_token: SecretStr | None = Field(
        default=None, alias="FAIRWAY_NATS_TOKEN",
        description="authenticate to NATS with this token")
    nats_nkey_seed_file: Path | None = Field(
        default=None, alias="FAIRWAY_NATS_NKEY_SEED_FILE",
        description="authenticate to NATS with the NKey whose seed is in this file")
    nats_creds_file: Path | None = Field(
        default=None, alias="FAIRWAY_NATS_CREDS_FILE",
        description="authenticate to NATS with this credentials file (user JWT and seed)")
    nats_tls_ca_file: Path | None = Field(
        default=None, alias="FAIRWAY_NATS_TLS_CA_FILE",
        description="verify the NATS server's certificate against this CA bundle (turns TLS "
                    "on)")
    nats_tls_cert_file: Path | None = Field(
        default=None, alias="FAIRWAY_NATS_TLS_CERT_FILE",
        description="client certificate for NATS mutual TLS (with FAIRWAY_NATS_TLS_KEY_FILE)")
    nats_tls_key_file: Path | None = Field(
        default=None, alias="FAIRWAY_NATS_TLS_KEY_FILE",
        description="private key of FAIRWAY_NATS_TLS_CERT_FILE")
    nats_tls_hostname: str | None = Field(
        default=None, alias="FAIRWAY_NATS_TLS_HOSTNAME",
        description="the name the server's certificate must carry, when it is not the URL's "
                    "host")

    @model_validator(mode="after")
    def _one_way_to_authenticate(self) -> "NatsClientSettings":
        ways = [name for name, given in (
            ("FAIRWAY_NATS_USER", self.nats_user or self.nats_password),
            ("FAIRWAY_NATS_TOKEN", self.nats_token),
            ("FAIRWAY_NATS_NKEY_SEED_FILE", self.nats_nkey_seed_file),
            ("FAIRWAY_NATS_CREDS_FILE", self.nats_creds_file)) if given]
        if len(ways) > 1:
            raise ValueError(f"NATS authentication: set one of {', '.join(ways)}, not several")
        if bool(self.nats_user) != bool(self.nats_password):
            raise ValueError("FAIRWAY_NATS_USER and FAIRWAY_NATS_PASSWORD go together")
        if bool(self.nats_tls_cert_file) != bool(self.nats_tls_key_file):
            raise ValueError("FAIRWAY_NATS_TLS_CERT_FILE and FAIRWAY_NATS_TLS_KEY_FILE go "
                             "together")
        for name, path in (("FAIRWAY_NATS_NKEY_SEED_FILE", self.nats_nkey_seed_file),
                           ("FAIRWAY_NATS_CREDS_FILE", self.nats_creds_file),
                           ("FAIRWAY_NATS_TLS_CA_FILE", self.nats_tls_ca_file),
                           ("FAIRWAY_NATS_TLS_CERT_FILE", self.nats_tls_cert_file),
                           ("FAIRWAY_NATS_TLS_KEY_FILE", self.nats_tls_key_file)):
            if path is not None and not path.is_file():
                raise ValueError(f"{name}: no such file: {path}")
        return self

    def nats_tls(self) -> ssl.SSLContext | None:
        if not (self.nats_tls_ca_file or self.nats_tls_cert_file):
            return None
        context = ssl.create_default_context(
            cafile=str(self.nats_tls_ca_file) if self.nats_tls_ca_file else None)
        if self.nats_tls_cert_file and self.nats_tls_key_file:
            context.load_cert_chain(str(self.nats_tls_cert_file), str(self.nats_tls_key_file))
        return context

    def nats_security(self) -> NatsSecurity | None:
        """The FastStream broker's `security=`: authentication and TLS, or None."""
        tls = {"ssl_context": self.nats_tls(), "tls_hostname": self.nats_tls_hostname}
        if self.nats_user and self.nats_password:
            return NatsUserPassword(self.nats_user, self.nats_password.get_secret_value(),
                                    **tls)
        if self.nats_token:
            return NatsToken(self.nats_token.get_secret_value(), **tls)
        if self.nats_nkey_seed_file:
            return NatsNKey(self.nats_nkey_seed_file, **tls)
        if self.nats_creds_file:
            return NatsCredentials(str(self.nats_creds_file), **tls)
        if tls["ssl_context"] is not None:
            return NatsSecurity(**tls)
        return None

    def nats_connect_options(self) -> dict[str, Any]:
        """The same for a plain `nats.connect`."""
        options: dict[str, Any] = {}
        if self.nats_user and self.nats_password:
            options |= {"user": self.nats_user,
                        "password": self.nats_password.get_secret_value()}
        if self.nats_token:
            options["token"] = self.nats_token.get_secret_value()
        if self.nats_nkey_seed_file:
            options["nkeys_seed"] = str(self.nats_nkey_seed_file)
        if self.nats_creds_file:
            options["user_credentials"] = str(self.nats_creds_file)
        if (tls := self.nats_tls()) is not None:
            options["tls"] = tls
            if self.nats_tls_hostname:
                options["tls_hostname"] = self.nats_tls_hostname
        return options
