"""Bearer tokens (signed, expiring JWTs), password hashing and the bootstrap administrator."""

import json
import os
import secrets
import time
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network, ip_address
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
        return Principal(subject=claims["sub"], kind=claims.get("kind", "user"))


class LoginLimiter:
    """Failed logins per (name, client): after `max_failures` within `window_seconds`, that
    name from that client answers 429 until the window passes. Per pair, so a stranger's
    failures never lock a user out from elsewhere, nor one user's failures lock out another
    user behind the same address. In memory, per API process."""

    def __init__(self, max_failures: int, window_seconds: float,
                 clock=time.monotonic):
        self.max_failures = max_failures
        self.window = window_seconds
        self.clock = clock
        self.failures: dict[tuple[str, str], list[float]] = {}

    def _recent(self, key: tuple[str, str]) -> list[float]:
        now = self.clock()
        recent = [t for t in self.failures.get(key, []) if now - t < self.window]
        if recent:
            self.failures[key] = recent
        else:
            self.failures.pop(key, None)
        return recent

    def check(self, name: str, client: str) -> None:
        recent = self._recent((name, client))
        if len(recent) >= self.max_failures:
            wait = max(1, int(self.window - (self.clock() - recent[0])) + 1)
            raise ApiError(429, "too many failed logins; try again later",
                           headers={"Retry-After": str(wait)})

    def failed(self, name: str, client: str) -> None:
        self.failures.setdefault((name, client), []).append(self.clock())
        if len(self.failures) > 100_000:  # bounded: forget the pairs whose window passed
            for key in list(self.failures):
                self._recent(key)

    def succeeded(self, name: str, client: str) -> None:
        self.failures.pop((name, client), None)


def client_address(peer: str | None, forwarded_for: str | None,
                   trusted: tuple[IPv4Network | IPv6Network, ...]) -> str:
    """The caller's address: the direct peer, unless the peer is a trusted proxy; then the
    right-most address in X-Forwarded-For that is not itself a trusted proxy. Anything a
    client writes in the header is ignored unless it came through a proxy we trust."""
    def is_trusted(address: str) -> bool:
        try:
            ip = ip_address(address.strip())
        except ValueError:
            return False
        return any(ip in network for network in trusted)

    if peer is None:
        return "?"
    if not forwarded_for or not is_trusted(peer):
        return peer
    for hop in reversed(forwarded_for.split(",")):
        hop = hop.strip()
        if hop and not is_trusted(hop):
            return hop
    return peer


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
