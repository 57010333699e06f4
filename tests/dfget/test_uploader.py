"""The peer uploader (§6.5): framing and range translation checked against an independent
model and against the CDN's own framing, every status code, the control routes, expiry."""

from __future__ import annotations

import struct
import time
from pathlib import Path

import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st

from dfget_client.config import ServerConfig
from dfget_client.ratelimit import TokenBucket
from dfget_client.supernode_api import SupernodeApi
from dfget_client.uploader import TaskEntry, Uploader, generate_port, valid_task_file_name
from dfget_client.uploader_ranges import (
    RangeNotSatisfiable,
    amend_range,
    parse_upload_params,
)
from supernode.protocol.pieces import frame, piece_count, piece_range, wrapped_length

# ---- an independent model of what a Go uploader sends ------------------------------------


def model_body(
    data: bytes, start: int, end: int, num: int, size: int, wrapped: bool
) -> bytes | None:
    """None means 416. Written from the reference text, not from the implementation."""
    if wrapped:
        raw = start - 5 * num
        want = end - start + 1
        if want < 5 or raw < 0 or raw > len(data):
            return None
        content = data[raw : raw + want - 5]
        head = ((len(content) | (size << 4)) & 0xFFFFFFFF).to_bytes(4, "big")
        return head + content + b"\x7f"
    if start < 0 or start >= len(data):
        return None
    return data[start : end + 1]


def implementation_body(
    data: bytes, start: int, end: int, num: int, size: int, wrapped: bool
) -> bytes | None:
    params = parse_upload_params(f"bytes={start}-{end}", str(num), str(size))
    try:
        plan = amend_range(len(data), params, wrapped=wrapped)
    except RangeNotSatisfiable:
        return None
    content = data[plan.raw_start : plan.raw_start + plan.content_length]
    body = plan.header() + content + plan.trailer() if plan.pad else content
    assert len(body) == plan.length  # Content-Length is exact
    return body


@settings(max_examples=400, deadline=None)
@given(
    st.binary(max_size=300),
    st.integers(0, 400),
    st.integers(1, 400),
    st.integers(0, 40),
    st.integers(6, 64),
    st.booleans(),
)
def test_range_translation_matches_the_model(
    data: bytes, start: int, span: int, num: int, size: int, wrapped: bool
) -> None:
    end = start + span
    assert implementation_body(data, start, end, num, size, wrapped) == model_body(
        data, start, end, num, size, wrapped
    )


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=500), st.sampled_from([8, 16, 37, 64]))
def test_every_piece_equals_the_cdn_framing(data: bytes, size: int) -> None:
    """What a peer serves for piece n is byte-identical to piece n of the CDN file."""
    count = piece_count(len(data), size)
    cdn = b"".join(frame(data[n * (size - 5) : (n + 1) * (size - 5)], size) for n in range(count))
    assert len(cdn) == wrapped_length(len(data), size)
    for n in range(count):
        start, end = map(int, piece_range(n, size).split("-"))
        body = implementation_body(data, start, end, n, size, True)
        assert body == cdn[start : end + 1]


def test_header_examples_of_the_reference() -> None:
    params = parse_upload_params("bytes=0-4194303", "0", "4194304")
    plan = amend_range(4194299, params, wrapped=True)
    assert plan.header() == bytes.fromhex("043FFFFB")
    assert amend_range(10, params, wrapped=True).header() == bytes.fromhex("0400000A")
    assert amend_range(0, params, wrapped=True).header() == bytes.fromhex("04000000")
    assert amend_range(0, params, wrapped=True).length == 5


@pytest.mark.parametrize(
    ("rng", "num", "size"),
    [("", "0", "4"), ("bytes=1-0", "0", "9"), ("bytes=5-5", "0", "9"), ("bytes=0-1-2", "0", "9"),
     ("bytes=0-9", "x", "9"), ("bytes=0-9", "0", ""), ("items=0=9", "0", "9"),
     ("bytes=a-9", "0", "9")],
)  # fmt: skip
def test_bad_params_are_400(rng: str, num: str, size: str) -> None:
    with pytest.raises(ValueError):
        parse_upload_params(rng, num, size)


# ---- the application -----------------------------------------------------------------------


@pytest.fixture
def server_cfg(tmp_path: Path) -> ServerConfig:
    (tmp_path / "data").mkdir()
    return ServerConfig(
        home=tmp_path, data_dir=tmp_path / "data", meta_path=tmp_path / "meta" / "host.meta",
        ip="127.0.0.1", expire_time=60.0,
    )  # fmt: skip


@pytest.fixture
async def uploader(server_cfg: ServerConfig, serve_uploader):  # type: ignore[no-untyped-def]
    up = Uploader(server_cfg)
    client = await serve_uploader(up)
    yield up, client
    await up.sn_api.close()


def piece_headers(start: int, end: int, num: int, size: int, **extra: str) -> dict[str, str]:
    return {"Range": f"bytes={start}-{end}", "pieceNum": str(num), "pieceSize": str(size), **extra}


async def test_check_registers_and_pieces_are_framed(uploader, server_cfg) -> None:  # type: ignore[no-untyped-def]
    up, client = uploader
    data = bytes(range(256)) * 40  # 10240 bytes
    (server_cfg.data_dir / "f-1-1.000.service").write_bytes(data)
    resp = await client.get("/check/f-1-1.000", headers={"dataDir": str(server_cfg.data_dir)})
    assert resp.status == 200 and await resp.text() == "f-1-1.000@1.0.6"
    size = 4194304
    resp = await client.get("/peer/file/f-1-1.000", headers=piece_headers(0, size - 1, 0, size))
    assert resp.status == 206
    assert resp.headers["Content-Type"] == "application/octet-stream"
    body = await resp.read()
    assert body == frame(data, size) and int(resp.headers["Content-Length"]) == len(body)
    resp = await client.get(
        "/peer/file/f-1-1.000", headers=piece_headers(100, 199, 0, size, cdnSource="source")
    )
    assert resp.status == 206 and await resp.read() == data[100:200]
    assert up.bytes_uploaded == len(body) + 100


async def test_status_codes(uploader, server_cfg) -> None:  # type: ignore[no-untyped-def]
    _, client = uploader
    good = piece_headers(0, 99, 0, 64)
    assert (await client.get("/peer/file/unknown", headers=good)).status == 500
    await client.get("/check/gone", headers={"dataDir": str(server_cfg.data_dir)})
    assert (await client.get("/peer/file/gone", headers=good)).status == 404
    (server_cfg.data_dir / "t.service").write_bytes(b"x" * 10)
    await client.get("/check/t")
    assert (await client.get("/peer/file/t", headers={"Range": "bytes=0-9"})).status == 400
    resp = await client.get("/peer/file/t", headers=piece_headers(0, 3, 0, 64))
    assert resp.status == 416 and "range not satisfiable" in await resp.text()
    assert (await client.get("/peer/file/t", headers=piece_headers(100, 199, 1, 64))).status == 416
    src = piece_headers(10, 19, 0, 64, cdnSource="source")
    assert (await client.get("/peer/file/t", headers=src)).status == 416
    (server_cfg.data_dir / "locked.service").write_bytes(b"x")
    (server_cfg.data_dir / "locked.service").chmod(0)
    await client.get("/check/locked")
    status = (await client.get("/peer/file/locked", headers=good)).status
    assert status in (403, 206)  # root may read anything


async def test_names_never_leave_the_data_dir(uploader, server_cfg, tmp_path) -> None:  # type: ignore[no-untyped-def]
    _, client = uploader
    (tmp_path / "secret.service").write_bytes(b"secret")
    for name in ("..%2Fsecret", "a%2Fb", "..", "."):
        assert (await client.get(f"/check/{name}")).status in (400, 404)
        resp = await client.get(f"/peer/file/{name}", headers=piece_headers(0, 99, 0, 64))
        assert resp.status in (404, 500)
    other = {"dataDir": str(tmp_path)}
    assert (await client.get("/check/secret", headers=other)).status == 400
    assert valid_task_file_name("a.txt-1-1.000") and not valid_task_file_name("../x")


async def test_rate_divides_the_total_limit(uploader) -> None:  # type: ignore[no-untyped-def]
    up, client = uploader
    resp = await client.get("/rate/a", headers={"rateLimit": "1000"})
    assert resp.status == 200 and await resp.text() == "1000"  # no total limit: echoed
    assert (await client.get("/rate/a", headers={"rateLimit": "x"})).status == 400
    await client.get("/check/a", headers={"totalLimit": "3000"})
    await client.get("/check/b")
    assert await (await client.get("/rate/a", headers={"rateLimit": "3000"})).text() == "3000"
    # a asks 3000 and b asks 3000: the sum exceeds 3000, each gets ceil(3000*3000/6000)
    assert await (await client.get("/rate/b", headers={"rateLimit": "3000"})).text() == "1500"
    assert up.limiter.rate == 3000


async def test_finish_and_ping(uploader) -> None:  # type: ignore[no-untyped-def]
    up, client = uploader
    assert (await client.get("/client/finish?taskFileName=a")).status == 400
    resp = await client.get("/client/finish?taskFileName=a&taskID=t&cid=c&superNode=1.2.3.4:8002")
    assert resp.status == 200 and await resp.text() == "success"
    entry = up.tasks["a"]
    assert (entry.task_id, entry.cid, entry.super_node, entry.finished) == (
        "t", "c", "1.2.3.4:8002", True,
    )  # fmt: skip
    assert await (await client.get("/server/ping")).text() == "success"


async def test_expiry_tells_the_supernode(server_cfg, aiohttp_server, tmp_path) -> None:  # type: ignore[no-untyped-def]
    downs: list[str] = []

    async def down(request: web.Request) -> web.Response:
        downs.append(request.raw_path)
        return web.json_response({"code": 612})

    app = web.Application()
    app.router.add_get("/peer/service/down", down)
    sn = await aiohttp_server(app)
    up = Uploader(server_cfg, sn_api=SupernodeApi())
    data = server_cfg.data_dir
    for name in ("done", "running", "orphan"):
        (data / f"{name}.service").write_bytes(b"x")
    up.tasks["done"] = TaskEntry(
        data_dir=data.resolve(), task_id="t1", cid="c1", super_node=f"127.0.0.1:{sn.port}",
        finished=True, access_time=0.0,
    )  # fmt: skip
    up.tasks["running"] = TaskEntry(data_dir=data.resolve(), access_time=0.0)
    removed = await up.collect_garbage(now=time.time() + 3600)
    assert sorted(removed) == ["done", "orphan"]
    assert (data / "running.service").exists() and not (data / "done.service").exists()
    assert downs == ["/peer/service/down?taskId=t1&cid=c1"]
    assert await up.collect_garbage() == []  # nothing else is old
    await up.shutdown_tasks()
    assert not (data / "running.service").exists()
    await up.sn_api.close()


def test_port_choice_and_token_bucket() -> None:
    assert generate_port(0, 300 * 7) == 15007 and generate_port(3, 300 * 7) == 15010
    now = [0.0]
    bucket = TokenBucket(1000, clock=lambda: now[0])
    assert bucket.rate == 1000
    assert bucket.reserve(16 * 1024) == 0.0  # the burst
    delay = bucket.reserve(2000)
    assert delay == pytest.approx(2.0)
    now[0] = 10.0
    assert bucket.reserve(500) == 0.0
    bucket.set_rate(1500)
    assert bucket.rate == 2000  # rounded up to a multiple of 1000, as the original
    assert TokenBucket(0).reserve(10**9) == 0.0


def test_struct_header_is_big_endian() -> None:
    plan = amend_range(10, parse_upload_params("bytes=0-99", "0", "4194304"), wrapped=True)
    assert struct.unpack(">I", plan.header())[0] == 10 | (4194304 << 4)
