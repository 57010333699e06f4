"""The download port: ranges, clipping, 404/416/400, ids, no compression, pieces still filling."""

from __future__ import annotations

import pytest
from cdn_testkit import (
    MIB,
    PS,
    Origin,
    Recorder,
    Resource,
    fill,
    payload,
    reference_pieces,
    spec_for,
)

from supernode.web.download import BadRange, create_download_app, parse_range


@pytest.fixture
async def filled(origin: Origin, make_cdn, aiohttp_client):  # type: ignore[no-untyped-def]
    data = payload(PS - 5 + 1000)  # two pieces, the last one short
    origin.files["f"] = Resource(data)
    spec = spec_for(origin.url("f"), len(data))
    cdn = make_cdn()
    await fill(cdn, spec)
    client = await aiohttp_client(create_download_app(cdn))
    return client, spec.task_id, reference_pieces(data, PS), cdn


def path_of(task: str) -> str:
    return f"/download/{task[:3]}/{task}"


async def test_every_piece_by_range_including_the_clipped_last(filled) -> None:  # type: ignore[no-untyped-def]
    client, task, pieces, _ = filled
    size = sum(len(p) for p in pieces)
    for n, piece in enumerate(pieces):
        start = n * PS
        headers = {"Range": f"bytes={start}-{start + PS - 1}", "pieceNum": str(n), "pieceSize": "x"}
        response = await client.get(path_of(task), headers=headers)
        assert response.status == 206
        assert await response.read() == piece
        end = min(start + PS, size) - 1
        assert response.headers["Content-Range"] == f"bytes {start}-{end}/{size}"
        assert "Content-Encoding" not in response.headers


async def test_whole_file_head_and_open_ranges(filled) -> None:  # type: ignore[no-untyped-def]
    client, task, pieces, _ = filled
    whole = b"".join(pieces)
    response = await client.get(path_of(task), headers={"Accept-Encoding": "gzip"})
    assert response.status == 200 and await response.read() == whole
    assert "Content-Encoding" not in response.headers
    head = await client.head(path_of(task))
    assert head.status == 200 and int(head.headers["Content-Length"]) == len(whole)
    tail = await client.get(path_of(task), headers={"Range": "bytes=-10"})
    assert tail.status == 206 and await tail.read() == whole[-10:]
    rest = await client.get(path_of(task), headers={"Range": f"bytes={len(whole) - 3}-"})
    assert rest.status == 206 and await rest.read() == whole[-3:]


@pytest.mark.parametrize(
    "header",
    ["bytes=99999999999-", "bytes=10-5", "bytes=0-1,5-6", "items=0-1", "bytes=abc", "bytes=-"],
)
async def test_bad_or_unsatisfiable_ranges_are_416(filled, header: str) -> None:  # type: ignore[no-untyped-def]
    client, task, pieces, _ = filled
    response = await client.get(path_of(task), headers={"Range": header})
    assert response.status == 416
    assert response.headers["Content-Range"] == f"bytes */{sum(len(p) for p in pieces)}"


async def test_start_at_exact_size_is_416(filled) -> None:  # type: ignore[no-untyped-def]
    client, task, pieces, _ = filled
    size = sum(len(p) for p in pieces)
    response = await client.get(path_of(task), headers={"Range": f"bytes={size}-{size + 10}"})
    assert response.status == 416


@pytest.mark.parametrize(
    "path",
    [
        "/download/abc/xyz",
        "/download/zzz/" + "a" * 64,
        "/download/AAA/" + "A" * 64,
        "/download/aaa/" + "a" * 63,
        "/download/aaa/" + "a" * 65,
        "/download/aaa/..%2F..%2Fetc%2Fpasswd",
        "/download/aaa/" + "a" * 64 + ".meta",
    ],
)
async def test_malformed_ids_are_4xx_and_touch_nothing(filled, path: str) -> None:  # type: ignore[no-untyped-def]
    client, _, _, cdn = filled
    before = sorted(p.name for p in cdn.config.download_root.rglob("*"))
    response = await client.get(path)
    assert response.status in (400, 404)
    assert sorted(p.name for p in cdn.config.download_root.rglob("*")) == before


async def test_traversal_outside_download_is_404(filled) -> None:  # type: ignore[no-untyped-def]
    client, _, _, _ = filled
    for path in ("/download/../repo/download", "/download/%2e%2e/%2e%2e/etc/passwd", "/download/"):
        response = await client.get(path)
        assert response.status in (400, 404)


async def test_unknown_task_is_404(filled) -> None:  # type: ignore[no-untyped-def]
    client, _, _, _ = filled
    response = await client.get(path_of("b" * 64), headers={"Range": "bytes=0-10"})
    assert response.status == 404


async def test_pieces_still_filling_are_never_served(
    origin: Origin, make_cdn, aiohttp_client
) -> None:  # type: ignore[no-untyped-def]
    data = payload(9 * MIB)
    origin.files["f"] = Resource(data, stall_at=PS + MIB, stalls=1)
    spec = spec_for(origin.url("f"), len(data))
    cdn = make_cdn()
    client = await aiohttp_client(create_download_app(cdn))
    rec = Recorder()
    cdn.start_fill(spec, rec)
    await rec.wait_piece(0)
    pieces = reference_pieces(data, PS)
    first = await client.get(path_of(spec.task_id), headers={"Range": f"bytes=0-{PS - 1}"})
    assert first.status == 206 and await first.read() == pieces[0]
    second = await client.get(path_of(spec.task_id), headers={"Range": f"bytes={PS}-{2 * PS - 1}"})
    assert second.status == 416
    spanning = await client.get(path_of(spec.task_id), headers={"Range": f"bytes={PS - 10}-{PS}"})
    assert spanning.status == 416
    whole = await client.get(path_of(spec.task_id))
    assert whole.status == 404
    assert 1 not in rec.pieces


async def test_finished_file_served_after_restart(origin: Origin, make_cdn, aiohttp_client) -> None:  # type: ignore[no-untyped-def]
    data = payload(3000)
    origin.files["f"] = Resource(data)
    spec = spec_for(origin.url("f"), len(data))
    first = make_cdn()
    await fill(first, spec)
    await first.close()
    client = await aiohttp_client(create_download_app(make_cdn()))
    response = await client.get(path_of(spec.task_id), headers={"Range": f"bytes=0-{PS - 1}"})
    assert response.status == 206 and await response.read() == reference_pieces(data, PS)[0]


async def test_unfinished_file_on_disk_is_not_served(
    origin: Origin, make_cdn, aiohttp_client
) -> None:  # type: ignore[no-untyped-def]
    origin.files["f"] = Resource(payload(9 * MIB), stall_at=5 * MIB, stalls=1)
    spec = spec_for(origin.url("f"), 9 * MIB)
    first = make_cdn()
    rec = Recorder()
    first.start_fill(spec, rec)
    await rec.wait_piece(0)
    await first.close()  # crash mid-fill: piece 0 on disk, .meta unfinished
    client = await aiohttp_client(create_download_app(make_cdn()))
    response = await client.get(path_of(spec.task_id), headers={"Range": f"bytes=0-{PS - 1}"})
    assert response.status == 404


def test_parse_range_clips_and_refuses() -> None:
    assert parse_range("bytes=0-99", 50) == (0, 49)
    assert parse_range("bytes=10-", 50) == (10, 49)
    assert parse_range("bytes=-5", 50) == (45, 49)
    assert parse_range("bytes=-500", 50) == (0, 49)
    for bad in ("bytes=50-60", "bytes=5-4", "bytes=1-2,3-4", "bytes=-0", "", "bytes=1"):
        with pytest.raises(BadRange):
            parse_range(bad, 50)
