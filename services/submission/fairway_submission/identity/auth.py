"""Bearer tokens (signed, expiring JWTs), password hashing and the bootstrap administrator."""

import json
import os
import secrets
import time
from dataclasses import dataclass
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
    """Failed logins per key (a username or client id, and the caller's address): after
    `max_failures` within `window_seconds`, further attempts answer 429 until the window
    passes. In memory, per API process."""

    def __init__(self, max_failures: int, window_seconds: float,
                 clock=time.monotonic):
        self.max_failures = max_failures
        self.window = window_seconds
        self.clock = clock
        self.failures: dict[str, list[float]] = {}

    def _recent(self, key: str) -> list[float]:
        now = self.clock()
        recent = [t for t in self.failures.get(key, []) if now - t < self.window]
        if recent:
            self.failures[key] = recent
        else:
            self.failures.pop(key, None)
        return recent

    def check(self, *keys: str) -> None:
        """Keys starting "addr:" (one caller's address, trying many names) get five times the
        allowance of a single name."""
        for key in keys:
            recent = self._recent(key)
            allowed = self.max_failures * (5 if key.startswith("addr:") else 1)
            if len(recent) >= allowed:
                wait = max(1, int(self.window - (self.clock() - recent[0])) + 1)
                raise ApiError(429, "too many failed logins; try again later",
                               headers={"Retry-After": str(wait)})

    def failed(self, *keys: str) -> None:
        for key in keys:
            self.failures.setdefault(key, []).append(self.clock())

    def succeeded(self, *keys: str) -> None:
        for key in keys:
            self.failures.pop(key, None)


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
