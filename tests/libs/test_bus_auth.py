"""NATS authentication and TLS settings, used by every service and the bus bootstrap alike:
against a server that requires credentials, a process connects with them and is refused
without them. User/password, token and NKey, each against a real nats-server."""

import asyncio

import nacl.signing
import nkeys
import pytest
import trustme

from fairway_bus.bootstrap import bootstrap
from fairway_bus.settings import NatsClientSettings
from fairway_devstack.servers import EmbeddedNats
from fairway_runtime import Service, ServiceSettings

pytestmark = pytest.mark.infra


async def starts(settings: ServiceSettings) -> bool:
    service = Service("auth_probe", settings, migrations=None)
    try:
        await asyncio.wait_for(service.start(serve_http=False), timeout=8)
        return service.broker_connected
    except Exception:
        return False
    finally:
        await service.stop()


def server(tmp_path, authorization: str) -> EmbeddedNats:
    return EmbeddedNats(tmp_path / "nats", extra_config=f"authorization {{ {authorization} }}\n"
                        ).start()


async def test_user_and_password(tmp_path, database_url):
    nats = server(tmp_path, "user: fairway, password: s3cret-pass")
    try:
        common = {"NATS_URL": nats.url, "DATABASE_URL": database_url}
        assert await starts(ServiceSettings(**common, FAIRWAY_NATS_USER="fairway",
                                            FAIRWAY_NATS_PASSWORD="s3cret-pass"))
        assert not await starts(ServiceSettings(**common))
        assert not await starts(ServiceSettings(**common, FAIRWAY_NATS_USER="fairway",
                                                FAIRWAY_NATS_PASSWORD="wrong"))
        await bootstrap(nats.url, settings=NatsClientSettings(
            FAIRWAY_NATS_USER="fairway", FAIRWAY_NATS_PASSWORD="s3cret-pass"))
    finally:
        nats.stop()


async def test_token(tmp_path, database_url):
    nats = server(tmp_path, "token: a-long-random-token")
    try:
        common = {"NATS_URL": nats.url, "DATABASE_URL": database_url}
        assert await starts(ServiceSettings(**common, FAIRWAY_NATS_TOKEN="a-long-random-token"))
        assert not await starts(ServiceSettings(**common))
    finally:
        nats.stop()


async def test_nkey_seed_file(tmp_path, database_url):
    raw = bytes(nacl.signing.SigningKey.generate())
    seed = nkeys.encode_seed(raw, nkeys.PREFIX_BYTE_USER)
    public = nkeys.from_seed(bytearray(seed)).public_key.decode()
    seed_file = tmp_path / "user.nk"
    seed_file.write_bytes(seed)
    nats = server(tmp_path, f"users: [ {{ nkey: {public} }} ]")
    try:
        common = {"NATS_URL": nats.url, "DATABASE_URL": database_url}
        assert await starts(ServiceSettings(**common, FAIRWAY_NATS_NKEY_SEED_FILE=seed_file))
        assert not await starts(ServiceSettings(**common))
    finally:
        nats.stop()


def test_one_way_to_authenticate_and_every_file_must_exist(tmp_path):
    with pytest.raises(ValueError, match="not several"):
        NatsClientSettings(FAIRWAY_NATS_USER="a", FAIRWAY_NATS_PASSWORD="b",
                           FAIRWAY_NATS_TOKEN="c")
    with pytest.raises(ValueError, match="go together"):
        NatsClientSettings(FAIRWAY_NATS_USER="a")
    with pytest.raises(ValueError, match="no such file"):
        NatsClientSettings(FAIRWAY_NATS_CREDS_FILE=tmp_path / "missing.creds")
    assert NatsClientSettings().nats_security() is None


async def test_tls_with_the_servers_ca_and_a_client_certificate(tmp_path, database_url):
    """A NATS server that requires TLS and verifies client certificates: a service connects
    with the CA and its certificate, and is refused without them."""
    ca = trustme.CA()
    server_cert = ca.issue_cert("127.0.0.1", "localhost")
    client_cert = ca.issue_cert("fairway-service")
    files = {}
    for name, blob in (("ca.pem", ca.cert_pem), ("server.pem", server_cert.cert_chain_pems[0]),
                       ("server-key.pem", server_cert.private_key_pem),
                       ("client.pem", client_cert.cert_chain_pems[0]),
                       ("client-key.pem", client_cert.private_key_pem)):
        files[name] = tmp_path / name
        blob.write_to_path(str(files[name]))
    nats = EmbeddedNats(tmp_path / "nats", extra_config=(
        f'tls {{ cert_file: "{files["server.pem"]}"\n key_file: "{files["server-key.pem"]}"\n'
        f' ca_file: "{files["ca.pem"]}"\n verify: true }}\n'))
    nats.start()
    try:
        url = nats.url.replace("nats://", "tls://")
        common = {"NATS_URL": url, "DATABASE_URL": database_url}
        assert await starts(ServiceSettings(
            **common, FAIRWAY_NATS_TLS_CA_FILE=files["ca.pem"],
            FAIRWAY_NATS_TLS_CERT_FILE=files["client.pem"],
            FAIRWAY_NATS_TLS_KEY_FILE=files["client-key.pem"]))
        assert not await starts(ServiceSettings(**common,
                                                FAIRWAY_NATS_TLS_CA_FILE=files["ca.pem"]))
        assert not await starts(ServiceSettings(**common))
    finally:
        nats.stop()
