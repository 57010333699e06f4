"""Who holds which piece of a task, who is fetching what from whom, loads and blacklists (§10).

How it works: a task's progress keeps a bitmask of the pieces the CDN has verified, and per
client (cid) a bitmask of pieces it holds plus the pieces it is running with their source.
Every assignment is recorded once in `running`; it ends exactly once — by a pull carrying the
piece's result, by `/peer/piece/suc`, or by the client going away — and only then are the
source's upload load (or the supernode's per-task load) released. Holders are kept per piece
in arrival order, so the scheduler can walk them with a rotating cursor instead of scanning
every peer on every pull; how many clients are fetching each piece is kept as assignments
start and end.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SUPERNODE = ""  # source key of the supernode in `running`
SUPERNODE_LOAD_RESET = 30.0  # seconds without change after which the supernode load resets


@dataclass(slots=True)
class ClientProgress:
    """One dfget-task's view: pieces held, pieces running, and its record as a source."""

    cid: str
    is_p2p: bool
    has: int = 0
    running: dict[int, str] = field(default_factory=dict)  # piece → source cid ("" = supernode)
    error_count: int = 0
    blacklist: set[str] = field(default_factory=set)
    service_error_count: int = 0
    up_load: int = 0
    service_down: bool = False

    @property
    def held_count(self) -> int:
        return self.has.bit_count()


@dataclass(slots=True)
class TaskProgress:
    """Piece bookkeeping of one task."""

    piece_total: int = 0
    cdn_done: int = 0
    piece_md5s: dict[int, str] = field(default_factory=dict)
    holders: dict[int, dict[str, None]] = field(default_factory=dict)
    cursors: dict[int, int] = field(default_factory=dict)
    clients: dict[str, ClientProgress] = field(default_factory=dict)
    supernode_load: int = 0
    supernode_load_changed: float = 0.0
    in_flight: int = 0
    fetching: dict[int, int] = field(default_factory=dict)  # piece → clients running it

    # ---- CDN side -------------------------------------------------------------------------

    def cdn_piece_ready(self, piece_num: int, piece_md5: str) -> None:
        self.cdn_done |= 1 << piece_num
        self.piece_md5s[piece_num] = piece_md5

    def cdn_reset(self) -> None:
        """A refill starts from nothing: pieces the CDN had are no longer served by it."""
        self.cdn_done = 0
        self.piece_md5s.clear()

    # ---- clients --------------------------------------------------------------------------

    def add_client(self, cid: str, is_p2p: bool) -> ClientProgress:
        client = self.clients.get(cid)
        if client is None:
            client = ClientProgress(cid=cid, is_p2p=is_p2p)
            self.clients[cid] = client
        return client

    def remove_client(self, cid: str, now: float) -> None:
        """Forget a client: its running pieces end, it is no longer a holder."""
        client = self.clients.pop(cid, None)
        if client is None:
            return
        for piece_num in list(client.running):
            self._end_running(client, piece_num, now)
        for holders in self.holders.values():
            holders.pop(cid, None)
        for other in self.clients.values():
            for piece_num, src in list(other.running.items()):
                if src == cid:
                    self._end_running(other, piece_num, now)

    def service_down(self, cid: str) -> None:
        client = self.clients.get(cid)
        if client is not None:
            client.service_down = True

    # ---- assignments ----------------------------------------------------------------------

    def start_running(self, client: ClientProgress, piece_num: int, src: str, now: float) -> None:
        client.running[piece_num] = src
        self.in_flight += 1
        self.fetching[piece_num] = self.fetching.get(piece_num, 0) + 1
        if src == SUPERNODE:
            self.supernode_load += 1
            self.supernode_load_changed = now
        else:
            source = self.clients.get(src)
            if source is not None:
                source.up_load += 1

    def _end_running(self, client: ClientProgress, piece_num: int, now: float) -> str | None:
        src = client.running.pop(piece_num, None)
        if src is None:
            return None
        self.in_flight -= 1
        left = self.fetching.pop(piece_num, 1) - 1
        if left:
            self.fetching[piece_num] = left
        if src == SUPERNODE:
            self.supernode_load = max(0, self.supernode_load - 1)
            self.supernode_load_changed = now
        else:
            source = self.clients.get(src)
            if source is not None:
                source.up_load = max(0, source.up_load - 1)
        return src

    def supernode_has_room(self, limit: int, now: float) -> bool:
        # A load that has not moved for 30 s is stale (lost reports): start counting afresh.
        if self.supernode_load and now - self.supernode_load_changed >= SUPERNODE_LOAD_RESET:
            self.supernode_load = 0
            self.supernode_load_changed = now
        return self.supernode_load < limit

    # ---- results --------------------------------------------------------------------------

    def piece_succeeded(
        self, client: ClientProgress, piece_num: int, src: str | None, now: float
    ) -> None:
        """The client has the piece (SEMISUC pull or `/peer/piece/suc`)."""
        ended = self._end_running(client, piece_num, now)
        source_cid = ended if ended is not None else src
        client.has |= 1 << piece_num
        client.error_count = 0
        if source_cid:
            source = self.clients.get(source_cid)
            if source is not None:
                source.service_error_count = 0

    def add_holder(self, client: ClientProgress, piece_num: int) -> None:
        """After `/peer/piece/suc` a P2P client becomes a source of the piece for others."""
        if client.is_p2p and not client.service_down:
            self.holders.setdefault(piece_num, {})[client.cid] = None

    def piece_failed(
        self, client: ClientProgress, piece_num: int, src: str | None, now: float, elimination: int
    ) -> None:
        """A failed fetch: blacklist the source for this client, count errors on both sides."""
        ended = self._end_running(client, piece_num, now)
        source_cid = ended if ended is not None else src
        if not source_cid:
            return  # the supernode is never blacklisted and never counts as failing
        client.blacklist.add(source_cid)
        client.error_count += 1
        source = self.clients.get(source_cid)
        if source is not None:
            source.service_error_count += 1
            if source.service_error_count >= elimination:
                for holders in self.holders.values():
                    holders.pop(source_cid, None)

    def is_finished(self, client: ClientProgress, cdn_success: bool) -> bool:
        return cdn_success and self.piece_total > 0 and client.held_count >= self.piece_total
