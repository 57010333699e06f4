"""Fills from real local origins: framing, md5s, resume, failures, redirects, chunked bodies."""

from __future__ import annotations

import hashlib
import json
import os

import pytest
from aiohttp import web
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

from supernode.cdn.interface import OriginAuthRequired, OriginNotFound, OriginRequest


def read_pieces(cdn, task: str, count: int, piece_size: int = PS) -> list[bytes]:  # type: ignore[no-untyped-def]
    data = cdn.store.data_path(task).read_bytes()
    return [data[n * piece_size : (n + 1) * piece_size] for n in range(count)]


def assert_matches_reference(cdn, spec, rec: Recorder, data: bytes) -> None:  # type: ignore[no-untyped-def]
    expected = reference_pieces(data, spec.piece_size)
    assert rec.reason is None
    assert rec.outcome is not None
    assert read_pieces(cdn, spec.task_id, len(expected), spec.piece_size) == expected
    assert cdn.store.data_size(spec.task_id) == sum(len(p) for p in expected)
    want = [f"{hashlib.md5(p).hexdigest()}:{len(p)}" for p in expected]
    assert [rec.pieces[n] for n in range(len(expected))] == want
    assert rec.order == list(range(len(expected)))
    assert rec.file_md5 == hashlib.md5(data).hexdigest()
    assert rec.outcome.http_file_length == len(data)
    assert list(rec.outcome.piece_md5s) == want


@pytest.mark.parametrize("size", [0, 1, PS - 5, PS - 4, 2 * (PS - 5), 9 * MIB + 7])
async def test_fill_matches_independent_framing(origin: Origin, make_cdn, size: int) -> None:
    data = payload(size, seed=size)
    origin.files["f"] = Resource(data)
    spec = spec_for(origin.url("f"), size)
    cdn = make_cdn()
    rec = await fill(cdn, spec)
    assert_matches_reference(cdn, spec, rec, data)
    assert rec.ends == 1
    assert rec.outcome.origin_bytes == size


async def test_helloworld_worked_example(origin: Origin, make_cdn) -> None:
    origin.files["hello"] = Resource(b"helloworld")
    spec = spec_for(origin.url("hello"), 10)
    cdn = make_cdn()
    rec = await fill(cdn, spec)
    assert cdn.store.data_path(spec.task_id).read_bytes().hex() == "0400000a68656c6c6f776f726c647f"
    assert rec.pieces == {0: "904bc91e4244a65ff76b6ba4af620ce1:15"}
    assert rec.file_md5 == "fc5e038d38a57032085441e7fe7010b0"
    assert cdn.store.md5_path(spec.task_id).read_text().split("\n") == [
        "904bc91e4244a65ff76b6ba4af620ce1:15",
        "fc5e038d38a57032085441e7fe7010b0",
        "5b78d792b9eed97242abcafb0cf07c4c09955ebf",
    ]
    meta = json.loads(cdn.store.meta_path(spec.task_id).read_bytes())
    assert meta["taskID"] == spec.task_id and meta["url"] == spec.task_url
    assert (meta["pieceSize"], meta["httpFileLen"], meta["fileLength"]) == (PS, 10, 15)
    assert (meta["finish"], meta["success"], meta["realMd5"]) == (True, True, rec.file_md5)
    assert meta["eTag"] == '"v1"' and meta["lastModified"] == 1_600_000_000_000
    assert list(meta) == [
        "taskID", "url", "pieceSize", "httpFileLen", "bizId", "accessTime", "interval",
        "fileLength", "md5", "realMd5", "lastModified", "eTag", "finish", "success",
    ]  # fmt: skip


async def test_origin_without_range_support(origin: Origin, make_cdn) -> None:
    data = payload(5 * MIB)
    origin.files["f"] = Resource(data, ranges=False)
    spec = spec_for(origin.url("f"), len(data))
    cdn = make_cdn()
    assert (await cdn.probe(spec.origin)).length == len(data)
    assert (await cdn.probe(spec.origin)).supports_range is False
    rec = await fill(cdn, spec)
    assert_matches_reference(cdn, spec, rec, data)


async def test_chunked_origin_with_unknown_length(origin: Origin, make_cdn) -> None:
    data = payload(PS + 123)
    origin.files["c"] = Resource(data, chunked=True, ranges=False)
    spec = spec_for(origin.url("c"), -1)
    cdn = make_cdn()
    assert (await cdn.probe(spec.origin)).length == -1
    rec = await fill(cdn, spec)
    assert_matches_reference(cdn, spec, rec, data)


async def test_chunked_empty_and_exact_piece(origin: Origin, make_cdn) -> None:
    cdn = make_cdn()
    for name, data in (("empty", b""), ("exact", payload(PS - 5))):
        origin.files[name] = Resource(data, chunked=True)
        spec = spec_for(origin.url(name), -1)
        rec = await fill(cdn, spec)
        assert_matches_reference(cdn, spec, rec, data)


async def test_probe_reports_length_and_range_support(origin: Origin, make_cdn) -> None:
    origin.files["f"] = Resource(payload(1000))
    origin.files["e"] = Resource(b"")
    cdn = make_cdn()
    result = await cdn.probe(OriginRequest(origin.url("f")))
    assert (result.length, result.supports_range) == (1000, True)
    assert (await cdn.probe(OriginRequest(origin.url("e")))).length == 0


@pytest.mark.parametrize("status", [401, 407, 404, 500, 503])
async def test_probe_and_fill_with_failing_origin(origin: Origin, make_cdn, status: int) -> None:
    origin.files["x"] = Resource(b"abc", status=status)
    cdn = make_cdn()
    request = OriginRequest(origin.url("x"))
    if status in (401, 407):
        with pytest.raises(OriginAuthRequired):
            await cdn.probe(request)
    elif status == 404:
        with pytest.raises(OriginNotFound):
            await cdn.probe(request)
    else:
        assert (await cdn.probe(request)).length == -1
    rec = await fill(cdn, spec_for(origin.url("x"), 3))
    assert rec.outcome is None and str(status) in (rec.reason or "")
    assert cdn.metrics.cdn_download_failed._value.get() == 1


async def test_unreachable_origin(make_cdn) -> None:
    cdn = make_cdn()
    assert (await cdn.probe(OriginRequest("http://127.0.0.1:9/x"))).length == -1
    rec = await fill(cdn, spec_for("http://127.0.0.1:9/x", 10))
    assert "cannot reach origin" in (rec.reason or "")


async def test_drop_midway_resumes_with_range(origin: Origin, make_cdn) -> None:
    data = payload(9 * MIB)
    origin.files["d"] = Resource(data, drops=2, drop_at=3 * MIB + 11)
    spec = spec_for(origin.url("d"), len(data))
    cdn = make_cdn()
    rec = await fill(cdn, spec)
    assert_matches_reference(cdn, spec, rec, data)
    ranges = [h.get("Range") for name, h, _ in origin.requests if name == "d"]
    assert ranges == [None, f"bytes={3 * MIB + 11}-{len(data) - 1}", f"bytes={6 * MIB + 22}-"
                      f"{len(data) - 1}"]  # fmt: skip
    assert all(h.get("If-Range") == '"v1"' for name, h, _ in origin.requests[1:])


async def test_drop_without_range_support_fails(origin: Origin, make_cdn) -> None:
    data = payload(5 * MIB)
    origin.files["d"] = Resource(data, ranges=False, drops=1, drop_at=MIB)
    rec = await fill(make_cdn(), spec_for(origin.url("d"), len(data)))
    assert rec.outcome is None
    assert "does not resume with Range" in (rec.reason or "")


async def test_drop_with_unknown_length_fails(origin: Origin, make_cdn) -> None:
    origin.files["d"] = Resource(payload(2 * MIB), chunked=True, drops=1, drop_at=MIB)
    rec = await fill(make_cdn(), spec_for(origin.url("d"), -1))
    assert rec.outcome is None and "dropped" in (rec.reason or "")


async def test_length_mismatch_fails(origin: Origin, make_cdn) -> None:
    origin.files["f"] = Resource(payload(1000))
    cdn = make_cdn()
    shorter = await fill(cdn, spec_for(origin.url("f"), 2000))
    assert shorter.outcome is None and "length mismatch" in (shorter.reason or "")
    longer = await fill(cdn, spec_for(origin.url("f"), 500))
    assert longer.outcome is None and "more than its length" in (longer.reason or "")
    assert cdn.servable(spec_for(origin.url("f"), 500).task_id) is None


async def test_md5_mismatch_fails(origin: Origin, make_cdn) -> None:
    data = payload(1000)
    origin.files["f"] = Resource(data)
    cdn = make_cdn()
    bad = await fill(cdn, spec_for(origin.url("f"), 1000, md5="0" * 32))
    assert bad.outcome is None and "md5 mismatch" in (bad.reason or "")
    good = await fill(cdn, spec_for(origin.url("f"), 1000, md5=hashlib.md5(data).hexdigest()))
    assert good.outcome is not None and good.file_md5 == hashlib.md5(data).hexdigest()


async def test_redirect_to_other_port_drops_credentials(
    origin: Origin, make_cdn, aiohttp_server
) -> None:
    data = payload(3000)
    origin.files["target"] = Resource(data)

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound(origin.url("target"))

    app = web.Application()
    app.router.add_get("/start", redirect)
    front = await aiohttp_server(app, host="127.0.0.1")
    url = str(front.make_url("/start"))
    headers = (("Authorization", "Bearer secret"), ("Cookie", "a=b"), ("X-Keep", "1"))
    spec = spec_for(url, len(data), headers=headers)
    cdn = make_cdn()
    rec = await fill(cdn, spec)
    assert_matches_reference(cdn, spec, rec, data)
    seen = [h for name, h, _ in origin.requests if name == "target"]
    assert seen and all("Authorization" not in h and "Cookie" not in h for h in seen)
    assert all(h.get("X-Keep") == "1" for h in seen)


async def test_no_transparent_decompression(origin: Origin, make_cdn) -> None:
    import gzip

    data = gzip.compress(payload(5000))

    async def gz(request: web.Request) -> web.Response:
        assert "Accept-Encoding" not in request.headers
        return web.Response(body=data, headers={"Content-Encoding": "gzip"})

    origin_app = origin.app()  # unused; a dedicated server keeps the handler simple
    del origin_app
    app = web.Application()
    app.router.add_get("/gz", gz)
    return_data = data
    cdn = make_cdn()
    from aiohttp.test_utils import TestServer

    async with TestServer(app, host="127.0.0.1") as server:
        spec = spec_for(str(server.make_url("/gz")), len(data))
        rec = await fill(cdn, spec)
    assert_matches_reference(cdn, spec, rec, return_data)


async def test_second_start_while_running_is_a_noop(origin: Origin, make_cdn) -> None:
    data = payload(5 * MIB)
    origin.files["f"] = Resource(data)
    spec = spec_for(origin.url("f"), len(data))
    cdn = make_cdn()
    first, second = Recorder(), Recorder()
    cdn.start_fill(spec, first)
    cdn.start_fill(spec, second)
    await first.wait()
    assert first.outcome is not None and second.ends == 0 and second.pieces == {}
    assert sum(1 for name, _, _ in origin.requests if name == "f") == 1


async def test_disk_full_fails_the_fill_only(origin: Origin, make_cdn, monkeypatch) -> None:
    import errno

    from supernode.cdn import fill as fill_module

    def full(*args: object) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    origin.files["f"] = Resource(payload(2 * MIB))
    cdn = make_cdn()
    monkeypatch.setattr(fill_module, "pwrite_all", full)
    rec = await fill(cdn, spec_for(origin.url("f"), 2 * MIB))
    assert rec.outcome is None and "No space left on device" in (rec.reason or "")
    monkeypatch.undo()
    again = await fill(cdn, spec_for(origin.url("f"), 2 * MIB))
    assert again.outcome is not None


async def test_unwritable_home_fails_the_fill(origin: Origin, make_cdn, make_config, tmp_path):  # type: ignore[no-untyped-def]
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the home directory should be")
    origin.files["f"] = Resource(b"x" * 100)
    broken = make_cdn(make_config(home_dir=blocker / "home"))
    rec = await fill(broken, spec_for(origin.url("f"), 100))
    assert rec.outcome is None and "cache disk error" in (rec.reason or "")
    healthy = make_cdn()
    assert (await fill(healthy, spec_for(origin.url("f"), 100))).outcome is not None


async def test_invalid_task_id_is_refused(origin: Origin, make_cdn) -> None:
    from dataclasses import replace

    spec = replace(spec_for(origin.url("f"), 10), task_id="../../etc/passwd")
    cdn = make_cdn()
    rec = await fill(cdn, spec)
    assert "invalid task id" in (rec.reason or "")
    assert not cdn.config.download_root.exists()
    assert origin.requests == []


def _self_signed(tmp_path) -> tuple[bytes, object]:  # type: ignore[no-untyped-def]
    import shutil
    import ssl
    import subprocess

    if shutil.which("openssl") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("openssl is needed for the TLS origin test")
        pytest.skip("openssl not installed")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return cert.read_bytes(), context


async def test_tls_origin_options(make_cdn, aiohttp_server, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import replace

    pem, context = _self_signed(tmp_path)
    tls_origin = Origin()
    data = payload(5000)
    tls_origin.files["f"] = Resource(data)
    server = await aiohttp_server(tls_origin.app(), host="127.0.0.1", ssl=context)
    url = str(server.make_url("/f"))
    assert url.startswith("https://")
    cdn = make_cdn()
    spec = spec_for(url, len(data))
    untrusted = await fill(cdn, spec)
    assert untrusted.outcome is None and "cannot reach origin" in (untrusted.reason or "")
    insecure = await fill(cdn, replace(spec, origin=OriginRequest(url, insecure=True)))
    assert insecure.outcome is not None
    assert_matches_reference(cdn, spec, insecure, data)
    # A probe cannot hide a TLS failure behind the cache: -1 unless the CA is trusted.
    assert (await cdn.probe(OriginRequest(url))).length == -1
    assert (await cdn.probe(OriginRequest(url, root_cas=(pem,)))).length == len(data)


async def test_file_md5_is_inline_only_when_the_registration_asks_for_one(
    origin: Origin, make_cdn
) -> None:
    data = payload(3 * PS + 11, seed=5)
    origin.files["f"] = Resource(data)
    real = hashlib.md5(data).hexdigest()
    cdn = make_cdn()
    # No md5 asked: success comes as soon as the pieces are verified, the file md5 after it.
    plain = await fill(cdn, spec_for(origin.url("f"), len(data)))
    assert plain.outcome is not None and plain.outcome.real_md5 == ""
    assert plain.file_md5 == real
    spec = spec_for(origin.url("f"), len(data))
    meta = json.loads(cdn.store.meta_path(spec.task_id).read_bytes())
    assert (meta["finish"], meta["success"], meta["realMd5"]) == (True, True, real)
    assert cdn.store.read_md5s(spec.task_id, real) == plain.outcome.piece_md5s
    # An md5 to check: computed on the way in, and the success already carries it.
    checked = await fill(cdn, spec_for(origin.url("f"), len(data), md5=real))
    assert checked.outcome is not None and checked.outcome.real_md5 == real
    assert checked.file_md5 == real
