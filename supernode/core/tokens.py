"""Personal access tokens: the stored record, scopes, and the pure allow / 401 / 403 decision."""

# How it works: a token is shown once at creation; only sha256(token) is stored. A request
# presents a token (`?access_token=` first, else `Authorization: Bearer …` with the scheme in
# any case); the caller hashes it, looks the record up by that hash and hands both to `check`,
# which compares the hashes in constant time, then state, expiry and scope, in DF2's order.

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from enum import StrEnum

UNAUTHORIZED = "Unauthorized"
INACTIVE = "Token is inactive"
EXPIRED = "Token has expired"
NO_PERMISSION = "Token doesn't have permission to access this resource. Required permission: "
MAX_TOKEN_LENGTH = 512


class TokenState(StrEnum):
    ACTIVE = "active"
    INACTIVE = "inactive"


class Scope(StrEnum):
    JOB = "job"
    CLUSTER = "cluster"
    ADMIN = "admin"  # ours: manages tokens over /api/v1/personal-access-tokens


DEFAULT_SCOPES = (Scope.JOB, Scope.CLUSTER)


@dataclass(frozen=True, slots=True)
class AccessToken:
    id: int
    name: str
    token_hash: str
    scopes: tuple[Scope, ...]
    state: TokenState
    expired_at: float
    created_at: float
    updated_at: float
    bio: str = ""
    user_id: int = 0


@dataclass(frozen=True, slots=True)
class Decision:
    """`status` 200 lets the request through; 401 and 403 carry DF2's message."""

    status: int
    message: str = ""

    @property
    def allowed(self) -> bool:
        return self.status == 200


ALLOW = Decision(200)


def hash_token(token: str) -> str:
    """Tokens are 256-bit random strings, so one sha256 is enough (no slow KDF needed)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def presented_token(authorization: str | None, access_token: str | None) -> str | None:
    """The query parameter wins (DF2 ≥ v2.3.1); the header must be exactly `Bearer <token>`."""
    if access_token is not None:
        return access_token or None
    if not authorization:
        return None
    fields = authorization.split()
    if len(fields) != 2 or fields[0].lower() != "bearer":
        return None
    return fields[1]


def parse_scopes(items: list[str] | tuple[str, ...]) -> tuple[Scope, ...]:
    """Known scope names, deduplicated in order; empty means DF2's default (job, cluster)."""
    out: list[Scope] = []
    for item in items:
        name = item.strip().lower()
        if not name:
            continue
        try:
            scope = Scope(name)
        except ValueError:
            known = ", ".join(s.value for s in Scope)
            raise ValueError(f"unknown scope {item!r} (known: {known})") from None
        if scope not in out:
            out.append(scope)
    return tuple(out) or DEFAULT_SCOPES


def check(record: AccessToken | None, presented_hash: str, required: Scope, now: float) -> Decision:
    if record is None or not hmac.compare_digest(record.token_hash, presented_hash):
        return Decision(401, UNAUTHORIZED)
    if record.state is not TokenState.ACTIVE:
        return Decision(403, INACTIVE)
    if now > record.expired_at:
        return Decision(403, EXPIRED)
    # DF2: an empty scope list grants everything (kept for old tokens); `admin` never comes
    # for free, it must be named.
    granted = required in record.scopes or (not record.scopes and required is not Scope.ADMIN)
    if not granted:
        return Decision(403, NO_PERMISSION + required.value)
    return ALLOW
