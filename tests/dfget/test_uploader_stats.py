"""The uploader's `/metrics` and `POST /client/stats`: body checks, local callers only, series."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from dfget_client.config import ServerConfig
from dfget_client.http_server import Headers, Request
from dfget_client.stats import MAX_BODY, REASONS, ClientStats, parse_client_stats
from dfget_client.uploader import Uploader

# name → (type, label names) as docs/metrics.md documents them
SERIES = {
    "dragonfly_dfget_build_info": ("gauge", {"version", "revision", "os", "arch", "goversion"}),
    "dragonfly_dfget_peer_upload_bytes_total": ("counter", set()),
    "dragonfly_dfget_peer_download_bytes_total": ("counter", {"source"}),
    "dragonfly_dfget_peer_pieces_total": ("counter", {"result"}),
    "dragonfly_dfget_peer_backsource_total": ("counter", {"reason"}),
    "dragonfly_dfget_peer_downloads_total": ("counter", {"result"}),
}
GOOD = ClientStats(
    success=False, supernode_bytes=10, peer_bytes=20, origin_bytes=30, pieces_verified=3,
    pieces_rejected=1, backsource=True, reason=3,
)  # fmt: skip


def body(**changes: object) -> bytes:
    obj = GOOD.to_body()
    obj.update(changes)
    return json.dumps(obj).encode()


def series(text: str) -> dict[str, tuple[str, dict[tuple[tuple[str, str], ...], float]]]:
    out = {}
    for family in text_string_to_metric_families(text):
        suffix = "_total" if family.type == "counter" else ""
        values = {tuple(sorted(s.labels.items())): s.value for s in family.samples}
        out[family.name + suffix] = (family.type, values)
    return out


def test_a_body_round_trips() -> None:
    assert parse_client_stats(json.dumps(GOOD.to_body()).encode()) == GOOD
    minimal = parse_client_stats(b'{"result":"success","future":"ignored"}')
    assert minimal == ClientStats(success=True)
    assert {"0", "3", "100", "1003"} <= REASONS and "9" not in REASONS


@pytest.mark.parametrize(
    "raw",
    [
        b"", b"not json", b"[]", b"\xff\xfe", b'"success"', b"{}",
        body(result="ok"), body(result=None),
        body(bytes={"supernode": -1}), body(bytes={"peer": True}), body(bytes={"peer": "1"}),
        body(bytes={"peer": 1.5}), body(bytes={"peer": 2**60}), body(bytes={"cdn": 1}),
        body(bytes=[1, 2]), body(pieces={"verified": -2}), body(pieces={"lost": 1}),
        body(backsource="yes"), body(reason=9), body(reason="3"), body(reason=True),
        body(reason=12345), b'{"result":"success","pad":"' + b"x" * MAX_BODY + b'"}',
    ],
)  # fmt: skip
def test_bad_bodies_are_refused(raw: bytes) -> None:
    with pytest.raises(ValueError):
        parse_client_stats(raw)


@pytest.fixture
async def uploader(tmp_path: Path, serve_uploader):  # type: ignore[no-untyped-def]
    (tmp_path / "data").mkdir()
    cfg = ServerConfig(
        home=tmp_path, data_dir=tmp_path / "data", meta_path=tmp_path / "meta" / "host.meta",
        ip="127.0.0.1",
    )  # fmt: skip
    up = Uploader(cfg)
    client = await serve_uploader(up)
    yield up, client
    await up.sn_api.close()


async def scrape(client) -> dict:  # type: ignore[no-untyped-def]
    resp = await client.get("/metrics")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain; version=")
    return series(await resp.text())


async def test_every_series_is_exposed_with_its_labels(uploader) -> None:  # type: ignore[no-untyped-def]
    _, client = uploader
    resp = await client.post("/client/stats", data=body())
    assert resp.status == 200 and await resp.text() == "success"
    found = await scrape(client)
    for name, (kind, labels) in SERIES.items():
        assert name in found, f"{name} missing"
        assert found[name][0] == kind, name
        for key in found[name][1]:
            assert {k for k, _ in key} == labels, (name, key)
    assert "process_resident_memory_bytes" in found and "python_info" in found
    assert not [n for n in found if n.endswith("_created")]


async def test_stats_add_up_and_bad_bodies_change_nothing(uploader) -> None:  # type: ignore[no-untyped-def]
    _, client = uploader
    before = await scrape(client)
    assert before["dragonfly_dfget_peer_downloads_total"][1] == {
        (("result", "success"),): 0.0, (("result", "fail"),): 0.0,
    }  # fmt: skip
    for _ in range(2):
        assert (await client.post("/client/stats", data=body())).status == 200
    ok = body(result="success", bytes={"peer": 5}, backsource=False, reason=0)
    assert (await client.post("/client/stats", data=ok)).status == 200
    for raw in (b"nope", body(reason=77), body(bytes={"peer": -5})):
        resp = await client.post("/client/stats", data=raw)
        assert resp.status == 400 and "invalid stats" in await resp.text()
    huge = b"{" + b" " * (MAX_BODY + 10) + b"}"
    assert (await client.post("/client/stats", data=huge)).status == 400
    assert (await client.get("/client/stats")).status == 405
    found = await scrape(client)
    sizes = found["dragonfly_dfget_peer_download_bytes_total"][1]
    assert sizes == {
        (("source", "supernode"),): 20.0, (("source", "peer"),): 45.0,
        (("source", "origin"),): 60.0,
    }  # fmt: skip
    assert found["dragonfly_dfget_peer_pieces_total"][1] == {
        (("result", "verified"),): 9.0, (("result", "rejected"),): 3.0,
    }  # fmt: skip
    assert found["dragonfly_dfget_peer_backsource_total"][1] == {(("reason", "3"),): 2.0}
    assert found["dragonfly_dfget_peer_downloads_total"][1] == {
        (("result", "success"),): 1.0, (("result", "fail"),): 2.0,
    }  # fmt: skip


def remote_request(data: bytes) -> Request:
    """A request from another host: peer 10.0.0.7 on a socket bound to 10.0.0.5."""
    return Request(
        method="POST", path="/client/stats", query={},
        headers=Headers([(b"Content-Length", str(len(data)).encode())]), body=data,
        remote="10.0.0.7", sockname=("10.0.0.5", 15001),
    )  # fmt: skip


async def test_remote_callers_are_refused(uploader) -> None:  # type: ignore[no-untyped-def]
    up, client = uploader
    resp = await up.stats(remote_request(body()))
    assert resp.status == 403
    found = await scrape(client)
    assert found["dragonfly_dfget_peer_downloads_total"][1][(("result", "fail"),)] == 0.0
    assert not found["dragonfly_dfget_peer_backsource_total"][1]


async def test_uploads_count_content_bytes_and_scrapes_are_no_sign_of_life(  # type: ignore[no-untyped-def]
    uploader, tmp_path
) -> None:
    up, client = uploader
    data = bytes(range(256)) * 40
    (tmp_path / "data" / "f-1-1.000.service").write_bytes(data)
    assert (await client.get("/check/f-1-1.000")).status == 200
    size = 4194304
    headers = {"Range": f"bytes=0-{size - 1}", "pieceNum": "0", "pieceSize": str(size)}
    resp = await client.get("/peer/file/f-1-1.000", headers=headers)
    assert resp.status == 206 and len(await resp.read()) == len(data) + 5
    headers = {"Range": "bytes=100-199", "pieceNum": "0", "pieceSize": str(size),
               "cdnSource": "source"}  # fmt: skip
    assert (await client.get("/peer/file/f-1-1.000", headers=headers)).status == 206
    # a refused piece (416) is no upload
    headers = {"Range": "bytes=0-3", "pieceNum": "0", "pieceSize": str(size)}
    assert (await client.get("/peer/file/f-1-1.000", headers=headers)).status == 416
    alive = up._last_alive
    found = await scrape(client)
    assert found["dragonfly_dfget_peer_upload_bytes_total"][1] == {(): float(len(data) + 100)}
    assert up._last_alive == alive
