"""Fetching one framed piece (§6.3) and writing it (§13.1): headers sent, framing stripped,
md5 checked over the whole body, errors mapped, bytes at raw offsets, the `.service` link,
the whole-file md5, fsync + rename."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
from pathlib import Path

import pytest
from aiohttp import web

from dfget_client.errors import PieceError, PieceErrorKind, VerifyError
from dfget_client.peer_api import PeerApi
from dfget_client.plan import PieceTask
from dfget_client.ratelimit import TokenBucket
from dfget_client.writer import TargetWriter
from supernode.protocol.pieces import frame, piece_md5

PS = 1024 * 1024  # whole MiB: the header's size bits never overlap the length bits
CONTENT = bytes(range(251)) * 5000  # 1 255 000 bytes: piece 0 is full, piece 1 short
PIECES = [CONTENT[: PS - 5], CONTENT[PS - 5 :]]
FRAMES = [frame(p, PS) for p in PIECES]


def task(n: int, path: str, port: int, md5: str | None = None) -> PieceTask:
    return PieceTask(
        range=f"{n * PS}-{(n + 1) * PS - 1}", piece_num=n, piece_size=PS,
        piece_md5=piece_md5(FRAMES[n]) if md5 is None else md5, cid="cdnnode:127.0.0.1~t",
        peer_ip="127.0.0.1", peer_port=port, path=path,
    )  # fmt: skip


@pytest.fixture
async def peer(aiohttp_server):  # type: ignore[no-untyped-def]
    seen: list[dict[str, str]] = []

    async def piece(request: web.Request) -> web.StreamResponse:
        seen.append(dict(request.headers))
        n = int(request.headers["pieceNum"])
        kind = request.match_info["kind"]
        body = FRAMES[n]
        if kind == "missing":
            raise web.HTTPNotFound()
        if kind == "corrupt":
            body = body[:100] + bytes([body[100] ^ 0xFF]) + body[101:]
        if kind == "long":
            body = body + b"x" * (PS + 10)
        if kind == "noframe":
            body = body[:-1] + b"\x00"
        if kind == "truncated":
            resp = web.StreamResponse(status=206)
            resp.content_length = len(body)
            await resp.prepare(request)
            await resp.write(body[: len(body) // 2])
            request.transport.close()  # type: ignore[union-attr]
            return resp
        if kind == "slow":
            await asyncio.sleep(30)
        return web.Response(status=206, body=body, content_type="application/octet-stream")

    app = web.Application()
    app.router.add_get("/{kind}/file", piece)
    server = await aiohttp_server(app)
    return server.port, seen


@pytest.fixture
async def api():  # type: ignore[no-untyped-def]
    peers = PeerApi(workers=4)
    yield peers
    await peers.close()


@pytest.fixture
def writer(tmp_path: Path):  # type: ignore[no-untyped-def]
    w = TargetWriter(tmp_path / "out" / "file", prefix="dfget-1-1.000.tmp-",
                     service_path=tmp_path / "home" / "data" / "file-1-1.000.service")  # fmt: skip
    w.open()
    yield w
    w.abort()


async def test_pieces_land_at_raw_offsets(peer, api, writer, tmp_path) -> None:  # type: ignore[no-untyped-def]
    port, seen = peer
    sizes = await asyncio.gather(
        api.fetch_piece(task(1, "/ok/file", port), writer.write_at, timeout=10),
        api.fetch_piece(task(0, "/ok/file", port), writer.write_at, timeout=10),
    )
    assert sorted(sizes) == sorted(len(p) for p in PIECES)
    headers = {h["pieceNum"]: h for h in seen}
    assert headers["1"]["Range"] == f"bytes={PS}-{2 * PS - 1}"
    assert headers["1"]["pieceSize"] == str(PS) and headers["1"]["User-Agent"] == "dfget/1.0.6"
    writer.mark_done(PS - 5, len(CONTENT))
    writer.mark_done(0, PS - 5)
    md5 = await writer.finish(
        length=len(CONTENT), expected_md5=hashlib.md5(CONTENT).hexdigest(), require_complete=True
    )
    assert md5 == hashlib.md5(CONTENT).hexdigest()
    out = tmp_path / "out" / "file"
    assert out.read_bytes() == CONTENT
    service = tmp_path / "home" / "data" / "file-1-1.000.service"
    assert service.read_bytes() == CONTENT and os.stat(service).st_ino == os.stat(out).st_ino
    assert not list(out.parent.glob("dfget-*"))


async def test_md5_mismatch_is_reported_with_both_sums(peer, api, writer) -> None:  # type: ignore[no-untyped-def]
    port, _ = peer
    with pytest.raises(PieceError) as info:
        await api.fetch_piece(task(0, "/corrupt/file", port), writer.write_at, timeout=10)
    assert info.value.kind is PieceErrorKind.MD5_MISMATCH
    assert info.value.expected_md5 == hashlib.md5(FRAMES[0]).hexdigest()
    assert len(info.value.real_md5) == 32 and info.value.real_md5 != info.value.expected_md5


@pytest.mark.parametrize(
    ("kind", "md5", "expected"),
    [
        ("missing", None, PieceErrorKind.NOT_FOUND),
        ("long", None, PieceErrorKind.BAD_FRAME),
        ("noframe", "", PieceErrorKind.BAD_FRAME),
        ("truncated", None, PieceErrorKind.UNREACHABLE),
    ],
)
async def test_errors_are_mapped(peer, api, writer, kind, md5, expected) -> None:  # type: ignore[no-untyped-def]
    port, _ = peer
    with pytest.raises(PieceError) as info:
        await api.fetch_piece(task(0, f"/{kind}/file", port, md5), writer.write_at, timeout=10)
    assert info.value.kind is expected
    assert writer.high_water <= PS - 5  # never a byte beyond the piece's own raw range


async def test_unreachable_peer(api, writer) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(PieceError) as info:
        await api.fetch_piece(task(0, "/ok/file", 1), writer.write_at, timeout=5)
    assert info.value.kind is PieceErrorKind.UNREACHABLE


async def test_without_md5_the_framing_still_guards(peer, api, writer) -> None:  # type: ignore[no-untyped-def]
    port, _ = peer
    size = await api.fetch_piece(task(1, "/ok/file", port, ""), writer.write_at, timeout=10)
    assert size == len(PIECES[1])


async def test_cancel_stops_a_slow_fetch(peer, api, writer) -> None:  # type: ignore[no-untyped-def]
    port, _ = peer
    fetch = asyncio.ensure_future(
        api.fetch_piece(task(0, "/slow/file", port), writer.write_at, timeout=60)
    )
    await asyncio.sleep(0.3)
    fetch.cancel()
    with pytest.raises(asyncio.CancelledError):
        await fetch
    await asyncio.wait_for(api.close(), 5)


async def test_rate_limit_is_taken_per_chunk(peer, api, writer) -> None:  # type: ignore[no-untyped-def]
    port, _ = peer
    taken: list[int] = []

    class Recording(TokenBucket):
        def reserve(self, amount: int) -> float:
            taken.append(amount)
            return 0.0

    await api.fetch_piece(
        task(0, "/ok/file", port), writer.write_at, timeout=10, limiter=Recording(10**9)
    )
    assert sum(taken) == len(FRAMES[0])


async def test_writer_checks_completeness_and_md5(tmp_path: Path) -> None:
    w = TargetWriter(tmp_path / "o", prefix="t-")
    w.open()
    w.write_at(0, [b"abc", b"def"])
    w.mark_done(0, 3)
    with pytest.raises(VerifyError, match="verified"):
        await w.finish(length=6, require_complete=True)
    w.abort()
    w2 = TargetWriter(tmp_path / "o", prefix="t-")
    w2.open()
    w2.write_at(3, [b"def"])
    w2.write_at(0, [memoryview(b"abc")])
    w2.mark_done(3, 6)
    w2.mark_done(0, 3)
    with pytest.raises(VerifyError, match="md5"):
        await w2.finish(length=6, expected_md5="0" * 32, require_complete=True)
    w2.abort()
    assert not (tmp_path / "o").exists() and not list(tmp_path.glob("t-*"))


async def test_writer_skips_the_whole_file_pass_only_when_allowed(tmp_path: Path) -> None:
    """Pieces checked on arrival and no `--md5`: no second pass; otherwise the file's md5."""
    for need, expected, result in [(False, "", ""), (True, "", hashlib.md5(b"abcdef").hexdigest())]:
        w = TargetWriter(tmp_path / "o", prefix="t-", hash_while_writing=False)
        w.open()
        w.write_at(0, [b"abcdef", b"zz"])  # two stray bytes past the length are trimmed
        w.mark_done(0, 6)
        assert await w.finish(length=6, require_complete=True, need_md5=need,
                              expected_md5=expected) == result  # fmt: skip
        assert (tmp_path / "o").read_bytes() == b"abcdef"
    w = TargetWriter(tmp_path / "o", prefix="t-", hash_while_writing=False)
    w.open()
    w.write_at(0, [b"abcdef"])
    w.mark_done(0, 6)
    with pytest.raises(VerifyError, match="md5"):  # a user's --md5 is always checked
        await w.finish(length=6, require_complete=True, need_md5=False, expected_md5="0" * 32)
    w.abort()


async def test_writer_trims_to_the_length_and_copies_across_filesystems(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_link(src: object, dst: object) -> None:
        raise OSError(errno.EXDEV, "cross-device link")

    monkeypatch.setattr(os, "link", no_link)
    service = tmp_path / "data" / "x.service"
    w = TargetWriter(tmp_path / "o", prefix="t-", service_path=service)
    w.open()
    assert not w.linked
    w.write_at(0, [b"hello", b"world", b"junk"])
    w.mark_done(0, 10)
    md5 = await w.finish(length=10, require_complete=True)
    assert (tmp_path / "o").read_bytes() == b"helloworld"
    assert md5 == hashlib.md5(b"helloworld").hexdigest()
    assert service.read_bytes().startswith(b"helloworld")
