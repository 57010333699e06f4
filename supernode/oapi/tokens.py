"""Personal access tokens: issue (shown once, stored hashed), authenticate a request."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from supernode.core import tokens as core
from supernode.core.tokens import AccessToken, Decision, Scope, TokenState
from supernode.oapi.store import TokenStore

log = logging.getLogger(__name__)
TOKEN_BYTES = 36  # 48 URL-safe characters, the length of a DF2 token; 288 random bits


@dataclass(frozen=True, slots=True)
class IssuedToken:
    record: AccessToken
    token: str  # the only time the clear token exists outside its holder


class Tokens:
    def __init__(self, store: TokenStore, clock: Callable[[], float]) -> None:
        self.store, self.clock = store, clock

    async def issue(
        self,
        name: str,
        scopes: tuple[Scope, ...],
        expired_at: float,
        *,
        bio: str = "",
        user_id: int = 0,
    ) -> IssuedToken:
        """Raises `store.NameTaken` for a name in use."""
        token = secrets.token_urlsafe(TOKEN_BYTES)
        now = self.clock()
        record = AccessToken(
            id=0,
            name=name,
            token_hash=core.hash_token(token),
            scopes=scopes,
            state=TokenState.ACTIVE,
            expired_at=expired_at,
            created_at=now,
            updated_at=now,
            bio=bio,
            user_id=user_id,
        )
        stored = await self.store.insert(record)
        scope_names = ",".join(s.value for s in scopes)
        log.info("personal access token %d (%s) created, scopes %s", stored.id, name, scope_names)
        return IssuedToken(stored, token)

    async def authenticate(
        self, authorization: str | None, access_token: str | None, required: Scope
    ) -> Decision:
        presented = core.presented_token(authorization, access_token)
        if presented is None or len(presented) > core.MAX_TOKEN_LENGTH:
            return Decision(401, core.UNAUTHORIZED)
        digest = core.hash_token(presented)
        # Looked up by its hash (an index): timing can only tell about a hash, never the token;
        # `check` then compares the hashes in constant time.
        record = await self.store.by_hash(digest)
        return core.check(record, digest, required, self.clock())
