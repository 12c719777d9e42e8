"""Bearer tokens (signed, expiring JWTs), password hashing and the bootstrap administrator."""

import json
import math
import os
import secrets
import time
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from pathlib import Path

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import VerifyMismatchError

from fairway_submission.core.errors import ApiError

ISSUER = "fairway"
_hasher = PasswordHasher()


@dataclass(frozen=True)
class Principal:
    """Who calls: a username (kind "user") or a service account's clientId."""

    subject: str
    kind: str = "user"
    expires_at: float = math.inf  # the token's `exp`, seconds since the epoch


class Tokens:
    def __init__(self, secret: str, ttl_seconds: int):
        self.secret = secret
        self.ttl_seconds = ttl_seconds

    def issue(self, subject: str, kind: str = "user", ttl_seconds: int | None = None
              ) -> tuple[str, int]:
        ttl = ttl_seconds or self.ttl_seconds
        now = int(time.time())
        claims = {"iss": ISSUER, "sub": subject, "kind": kind, "iat": now, "exp": now + ttl}
        return jwt.encode(claims, self.secret, algorithm="HS256"), ttl

    def verify(self, authorization: str | None) -> Principal:
        unauthorized = {"WWW-Authenticate": "Bearer"}
        if not authorization:
            raise ApiError(401, "missing bearer token: send 'Authorization: Bearer <token>'",
                           headers=unauthorized)
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise ApiError(401, "the Authorization header must be 'Bearer <token>'",
                           headers=unauthorized)
        try:
            claims = jwt.decode(token.strip(), self.secret, algorithms=["HS256"], issuer=ISSUER,
                                options={"require": ["exp", "sub"]})
        except jwt.ExpiredSignatureError:
            raise ApiError(401, "the token has expired; request a new one",
                           headers=unauthorized) from None
        except jwt.InvalidTokenError:
            raise ApiError(401, "the token is not valid", headers=unauthorized) from None
        return Principal(subject=claims["sub"], kind=claims.get("kind", "user"),
                         expires_at=claims["exp"])


class LoginLimiter:
    """What failed logins allow. Per (name, client): after `max_failures` within
    `window_seconds`, that name from that client answers 429 until the window passes; a
    stranger's failures never lock a user out from elsewhere, nor one user's failures lock out
    another user behind the same address. Per client, across names (spraying one password over
    many names): past `client_max_failures`, the client's attempts are taken one per
    `client_pace_seconds`, in turn; they wait rather than being refused, so a correct password
    of anyone behind that address still gets in. Only a client holding more than
    `MAX_TURN_WAIT_SECONDS` worth of attempts in waiting is answered 429. The counts live in
    PostgreSQL, shared by every replica of the API."""

    MAX_TURN_WAIT_SECONDS = 10.0

    def __init__(self, max_failures: int, window_seconds: float, client_max_failures: int,
                 client_pace_seconds: float):
        self.max_failures = max_failures
        self.window = window_seconds
        self.client_max_failures = client_max_failures
        self.client_pace = client_pace_seconds

    def check_pair(self, failures: int, oldest_age_seconds: float) -> None:
        if failures >= self.max_failures:
            raise too_many_logins(self.window - oldest_age_seconds)

    def paced(self, client_failures: int) -> bool:
        return client_failures >= self.client_max_failures


def too_many_logins(retry_after_seconds: float) -> ApiError:
    return ApiError(429, "too many failed logins; try again later",
                    headers={"Retry-After": str(max(1, math.ceil(retry_after_seconds)))})


def client_address(peer: str | None, forwarded_for: str | None,
                   trusted: tuple[IPv4Network | IPv6Network, ...]) -> str:
    """The caller, as login limits count it: the direct peer, unless the peer is a trusted
    proxy; then the right-most address in X-Forwarded-For that is not itself a trusted proxy.
    Anything a client writes in the header is ignored unless it came through a proxy we trust.
    One caller is one key: a port is dropped, an address written one way, an IPv6 address
    taken as its /64 (one host commonly holds the whole block)."""
    if peer is None:
        return "?"
    if not forwarded_for or not _in(_parsed(peer), trusted):
        return _client_key(peer)
    for hop in reversed(forwarded_for.split(",")):
        hop = hop.strip()
        if hop and not _in(_parsed(hop), trusted):
            return _client_key(hop)
    return _client_key(peer)


def _parsed(address: str) -> IPv4Address | IPv6Address | None:
    """An address, with the port a proxy may append ("1.2.3.4:80", "[2001:db8::1]:80")
    dropped; None when it is none."""
    address = address.strip()
    if address.startswith("["):
        address = address[1:].partition("]")[0]
    elif address.count(":") == 1:
        address = address.partition(":")[0]
    try:
        ip = ip_address(address)
    except ValueError:
        return None
    return (ip.ipv4_mapped or ip) if isinstance(ip, IPv6Address) else ip


def _in(ip: IPv4Address | IPv6Address | None,
        networks: tuple[IPv4Network | IPv6Network, ...]) -> bool:
    return ip is not None and any(ip in network for network in networks)


def _client_key(address: str) -> str:
    ip = _parsed(address)
    if ip is None:
        return address.strip()[:100]
    if isinstance(ip, IPv6Address):
        return str(ip_network(f"{ip}/64", strict=False))
    return str(ip)


# Verified against when the user does not exist, so an unknown name costs what a known one
# does (answer times would otherwise tell which usernames exist).
_ABSENT_USER_HASH = _hasher.hash(secrets.token_urlsafe(16))


def verify_absent_user(password: str) -> bool:
    verify_password(_ABSENT_USER_HASH, password)
    return False


def new_client_secret() -> str:
    return secrets.token_urlsafe(32)


def new_client_id() -> str:
    return f"fw-{secrets.token_hex(8)}"


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except VerifyMismatchError:
        return False
    except Exception:
        return False


def new_password() -> str:
    return secrets.token_urlsafe(18)


def write_private(path: Path, content: str) -> None:
    """Write a file only its owner can read (0600), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(content)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def write_admin_files(state_dir: Path, api_url: str, username: str, password: str | None,
                      token: str) -> None:
    write_private(state_dir / "admin-token", token + "\n")
    creds_path = state_dir / "admin.json"
    if password is not None or not creds_path.exists():
        write_private(creds_path, json.dumps(
            {"username": username, "password": password, "apiUrl": api_url}, indent=2) + "\n")
