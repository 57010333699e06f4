"""What the user sees while dfget runs: the `--showbar` bar (bytes, rate, share from peers /
supernode / origin), the `--verbose` line per piece naming its source, and the summary line."""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import TextIO

from dfget_client.plan import SourceKind

_BAR_WIDTH = 24
_KINDS = (SourceKind.SUPERNODE, SourceKind.PEER, SourceKind.ORIGIN)


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.1f}{unit}" if unit != "B" else f"{int(n)}B"
        n /= 1024
    return f"{n:.1f}GiB"


class Progress:
    """Counts bytes and pieces per source; renders at most ~10 times a second."""

    def __init__(
        self,
        *,
        showbar: bool = False,
        verbose: bool = False,
        out: TextIO | None = None,
        bar_stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.out = out or sys.stdout
        self.bar_stream = bar_stream or sys.stderr
        self.verbose = verbose
        self.showbar = showbar and self.bar_stream.isatty()
        self.total = -1
        self.bytes: Counter[SourceKind] = Counter()
        self.pieces: Counter[SourceKind] = Counter()
        self.content: Counter[SourceKind] = Counter()  # content bytes of verified pieces
        self.peers: Counter[str] = Counter()
        self.failures = 0
        self.verified = 0  # pieces that verified (a back-to-source file is not a piece)
        self.rejected = 0  # pieces that arrived but did not verify (md5, framing)
        self._clock = clock
        self._start = clock()
        self._last_draw = 0.0
        self._drawn = False

    def set_total(self, total: int) -> None:
        self.total = total

    def add_bytes(self, kind: SourceKind, n: int) -> None:
        self.bytes[kind] += n
        if self.showbar and self._clock() - self._last_draw >= 0.1:
            self._draw()

    def piece_done(self, piece_num: int, kind: SourceKind, addr: str, nbytes: int) -> None:
        self.pieces[kind] += 1
        self.content[kind] += nbytes
        self.verified += 1
        if kind is SourceKind.PEER:
            self.peers[addr] += 1
        if self.verbose:
            self._line(f"piece {piece_num} ok from {kind.value} {addr} ({nbytes} bytes)")

    def piece_failed(
        self, piece_num: int, kind: SourceKind, addr: str, reason: str, *, rejected: bool = False
    ) -> None:
        self.failures += 1
        self.rejected += rejected
        if self.verbose:
            self._line(f"piece {piece_num} failed from {kind.value} {addr}: {reason}")

    def origin_done(self, nbytes: int) -> None:
        self.pieces[SourceKind.ORIGIN] += 1
        if self.verbose:
            self._line(f"file ok from origin ({nbytes} bytes)")

    def note(self, text: str) -> None:
        if self.verbose:
            self._line(text)

    def summary(self) -> str:
        counts = " ".join(f"{k.value}={self.pieces[k]}" for k in _KINDS)
        sizes = " ".join(f"{k.value}={self.bytes[k]}" for k in _KINDS)
        peers = ",".join(f"{addr}={n}" for addr, n in sorted(self.peers.items())) or "-"
        return f"summary pieces {counts} bytes {sizes} failed={self.failures} peers {peers}"

    def close(self) -> None:
        if self.showbar:
            self._draw()
            self.bar_stream.write("\n")
            self.bar_stream.flush()
            self._drawn = False
        if self.verbose:
            self._line(self.summary())

    def _line(self, text: str) -> None:
        if self._drawn:
            self.bar_stream.write("\r\033[K")
            self._drawn = False
        self.out.write(text + "\n")
        self.out.flush()

    def render(self) -> str:
        done = sum(self.bytes.values())
        elapsed = max(self._clock() - self._start, 1e-6)
        share = " ".join(
            f"{k.value} {100 * self.bytes[k] / done:.0f}%" if done else f"{k.value} 0%"
            for k in _KINDS
        )
        if self.total > 0:
            fraction = min(1.0, done / self.total)
            filled = int(fraction * _BAR_WIDTH)
            bar = "#" * filled + "." * (_BAR_WIDTH - filled)
            head = f"[{bar}] {100 * fraction:5.1f}% {human(done)}/{human(self.total)}"
        else:
            head = human(done)
        return f"{head} {human(done / elapsed)}/s | {share}"

    def _draw(self) -> None:
        self._last_draw = self._clock()
        self.bar_stream.write("\r" + self.render() + "\033[K")
        self.bar_stream.flush()
        self._drawn = True
