"""What the user sees: the `--showbar` bar, `--verbose` lines per piece, the summary line."""

from __future__ import annotations

import io

from dfget_client.plan import SourceKind
from dfget_client.progress import Progress, human


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_verbose_lines_and_summary() -> None:
    out = io.StringIO()
    progress = Progress(verbose=True, out=out, bar_stream=io.StringIO())
    progress.piece_done(0, SourceKind.SUPERNODE, "10.0.0.1:8001", 4194299)
    progress.piece_done(1, SourceKind.PEER, "10.0.0.7:15001", 4194299)
    progress.piece_done(2, SourceKind.PEER, "10.0.0.7:15001", 10)
    progress.piece_failed(3, SourceKind.PEER, "10.0.0.8:15002", "md5 mismatch")
    progress.add_bytes(SourceKind.SUPERNODE, 4194304)
    progress.add_bytes(SourceKind.PEER, 4194319)
    progress.close()
    lines = out.getvalue().splitlines()
    assert lines[0] == "piece 0 ok from supernode 10.0.0.1:8001 (4194299 bytes)"
    assert lines[1] == "piece 1 ok from peer 10.0.0.7:15001 (4194299 bytes)"
    assert lines[3] == "piece 3 failed from peer 10.0.0.8:15002: md5 mismatch"
    assert lines[-1] == (
        "summary pieces supernode=1 peer=2 origin=0 bytes supernode=4194304 peer=4194319 "
        "origin=0 failed=1 peers 10.0.0.7:15001=2"
    )


def test_quiet_without_verbose_and_no_bar_off_a_terminal() -> None:
    out, bar = io.StringIO(), io.StringIO()
    progress = Progress(showbar=True, out=out, bar_stream=bar)
    progress.piece_done(0, SourceKind.PEER, "a:1", 5)
    progress.add_bytes(SourceKind.PEER, 5)
    progress.close()
    assert out.getvalue() == "" and bar.getvalue() == ""


def test_bar_on_a_terminal_shows_bytes_rate_and_shares() -> None:
    now = [0.0]
    bar = Tty()
    progress = Progress(showbar=True, out=io.StringIO(), bar_stream=bar, clock=lambda: now[0])
    progress.set_total(400)
    now[0] = 1.0
    progress.add_bytes(SourceKind.PEER, 300)
    progress.add_bytes(SourceKind.SUPERNODE, 100)
    text = progress.render()
    assert text.startswith("[" + "#" * 24 + "] 100.0% 400B/400B 400B/s")
    assert "supernode 25% peer 75% origin 0%" in text
    progress.close()
    assert bar.getvalue().startswith("\r[") and bar.getvalue().endswith("\n")


def test_human_sizes() -> None:
    assert [human(n) for n in (5, 2048, 3 << 20, 5 << 30)] == ["5B", "2.0KiB", "3.0MiB", "5.0GiB"]


def test_figures_for_the_uploader_count_verified_content_only() -> None:
    progress = Progress(out=io.StringIO(), bar_stream=io.StringIO())
    progress.piece_done(0, SourceKind.SUPERNODE, "s:8001", 4194299)
    progress.piece_done(1, SourceKind.PEER, "p:15001", 10)
    progress.add_bytes(SourceKind.PEER, 4194304)  # wire bytes of a piece that then failed
    progress.piece_failed(2, SourceKind.PEER, "p:15001", "md5 mismatch", rejected=True)
    progress.piece_failed(3, SourceKind.PEER, "q:15002", "cannot connect")
    progress.origin_done(7)
    assert progress.content == {SourceKind.SUPERNODE: 4194299, SourceKind.PEER: 10}
    assert (progress.verified, progress.rejected, progress.failures) == (2, 1, 2)
