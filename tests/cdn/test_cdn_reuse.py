"""Cache reuse after a restart (§9.3), piece checks (§9.6), delete, and the disk GC (§9.4)."""

from __future__ import annotations

import hashlib
import json

from cdn_testkit import (
    MIB,
    PS,
    Origin,
    Recorder,
    Resource,
    fill,
    payload,
    reference_md5s,
    reference_pieces,
    spec_for,
)

from supernode.protocol.ids import task_id


async def filled_then_stopped(origin: Origin, make_cdn, data: bytes, name: str = "f"):  # type: ignore[no-untyped-def]
    """A task the origin serves as `name`, filled by a supernode that then stopped: its home
    keeps the cache files. → (spec, that stopped CDN)."""
    origin.files[name] = Resource(data)
    spec = spec_for(origin.url(name), len(data))
    first = make_cdn()
    await fill(first, spec)
    await first.close()
    return spec, first


async def test_restart_reuses_cache_when_origin_answers_304(origin: Origin, make_cdn) -> None:
    data = payload(9 * MIB)
    spec, _ = await filled_then_stopped(origin, make_cdn, data)
    served = origin.body_bytes
    second = make_cdn()  # a restarted supernode: same home, empty memory
    rec = await fill(second, spec)
    assert rec.outcome is not None and rec.outcome.cache_hit
    assert rec.file_md5 == hashlib.md5(data).hexdigest()
    assert [rec.pieces[n] for n in range(3)] == reference_md5s(data, PS)
    assert origin.body_bytes == served  # not one byte refetched
    last = origin.requests[-1]
    assert last[2] == 304 and last[1]["If-None-Match"] == '"v1"'
    assert "If-Modified-Since" in last[1]
    assert second.metrics.cdn_cache_hit._value.get() == 1
    meta = json.loads(second.store.meta_path(spec.task_id).read_bytes())
    assert meta["interval"] >= 0 and meta["success"] is True


async def test_restart_refetches_when_origin_changed(origin: Origin, make_cdn) -> None:
    old, new = payload(5 * MIB, seed=1), payload(5 * MIB, seed=2)
    spec, _ = await filled_then_stopped(origin, make_cdn, old)
    origin.files["f"] = Resource(new, etag='"v2"', last_modified=1_700_000_000.0)
    second = make_cdn()
    rec = await fill(second, spec)
    assert rec.outcome is not None and not rec.outcome.cache_hit
    assert rec.file_md5 == hashlib.md5(new).hexdigest()
    assert [rec.pieces[n] for n in range(2)] == reference_md5s(new, PS)
    assert second.store.data_path(spec.task_id).read_bytes()[4:100] == new[:96]
    assert origin.requests[-2][2] == 200  # the revalidation was refused...
    assert origin.requests[-1][2] == 200 and "Range" not in origin.requests[-1][1]  # ...refetch


async def test_corrupt_md5_file_takes_the_slow_path(origin: Origin, make_cdn) -> None:
    data = payload(5 * MIB)
    spec, first = await filled_then_stopped(origin, make_cdn, data)
    md5_path = first.store.md5_path(spec.task_id)
    md5_path.write_text(md5_path.read_text().replace("a", "b", 1))
    served = origin.body_bytes
    rec = await fill(make_cdn(), spec)
    assert rec.outcome is not None and rec.outcome.cache_hit
    assert [rec.pieces[n] for n in range(2)] == reference_md5s(data, PS)
    assert origin.body_bytes == served
    assert md5_path.read_text().split("\n")[:2] == reference_md5s(data, PS)


async def test_corrupt_data_file_is_refetched(origin: Origin, make_cdn) -> None:
    data = payload(5 * MIB)
    spec, first = await filled_then_stopped(origin, make_cdn, data)
    first.store.md5_path(spec.task_id).unlink()
    path = first.store.data_path(spec.task_id)
    raw = bytearray(path.read_bytes())
    raw[1000] ^= 0xFF
    path.write_bytes(bytes(raw))
    rec = await fill(make_cdn(), spec)
    assert rec.outcome is not None and not rec.outcome.cache_hit
    assert path.read_bytes()[1000] != raw[1000]
    assert [rec.pieces[n] for n in range(2)] == reference_md5s(data, PS)


async def test_restart_resumes_partial_file_with_range(origin: Origin, make_cdn) -> None:
    data = payload(9 * MIB)
    origin.files["f"] = Resource(data, stall_at=5 * MIB, stalls=1)
    spec = spec_for(origin.url("f"), len(data))
    first = make_cdn()
    started = Recorder()
    first.start_fill(spec, started)
    await started.wait_piece(0)
    await first.close()  # the supernode dies mid-fill
    assert started.ends == 0
    second = make_cdn()
    rec = await fill(second, spec)
    assert rec.outcome is not None and not rec.outcome.cache_hit
    assert [rec.pieces[n] for n in range(3)] == reference_md5s(data, PS)
    assert rec.file_md5 == hashlib.md5(data).hexdigest()
    resumed = origin.requests[-1]
    assert resumed[2] == 206 and resumed[1]["Range"] == f"bytes={PS - 5}-{len(data) - 1}"
    assert rec.outcome.origin_bytes == len(data) - (PS - 5)
    expected = b"".join(reference_pieces(data, PS))  # the whole file is byte-exact
    assert second.store.data_path(spec.task_id).read_bytes() == expected


async def test_partial_file_without_range_support_starts_over(origin: Origin, make_cdn) -> None:
    data = payload(9 * MIB)
    origin.files["f"] = Resource(data, ranges=False, stall_at=5 * MIB, stalls=1)
    spec = spec_for(origin.url("f"), len(data))
    first = make_cdn()
    started = Recorder()
    first.start_fill(spec, started)
    await started.wait_piece(0)
    await first.close()
    rec = await fill(make_cdn(), spec)
    assert rec.outcome is not None
    assert rec.outcome.origin_bytes == len(data)
    assert "Range" not in origin.requests[-1][1]


async def test_check_piece_and_delete(origin: Origin, make_cdn) -> None:
    data = payload(9 * MIB)
    origin.files["f"] = Resource(data)
    spec = spec_for(origin.url("f"), len(data))
    cdn = make_cdn()
    await fill(cdn, spec)
    assert await cdn.check_piece(spec.task_id, 1, "")
    path = cdn.store.data_path(spec.task_id)
    with path.open("r+b") as handle:
        handle.seek(PS + 10)
        handle.write(b"\x00\x01\x02")
    assert not await cdn.check_piece(spec.task_id, 1, reference_md5s(data, PS)[1])
    assert await cdn.check_piece(spec.task_id, 0, "")
    await cdn.close()
    restarted = make_cdn()  # the recorded md5s now come from the .md5 file
    assert await restarted.check_piece(spec.task_id, 0, "")
    assert not await restarted.check_piece(spec.task_id, 1, "")
    assert not await restarted.check_piece(spec.task_id, 7, "")
    assert not await restarted.check_piece("not-an-id", 0, "")
    await restarted.delete(spec.task_id)
    assert not path.exists() and not restarted.store.meta_path(spec.task_id).exists()
    assert not await restarted.check_piece(spec.task_id, 0, "")
    assert restarted.servable(spec.task_id) is None


async def test_delete_stops_a_running_fill(origin: Origin, make_cdn) -> None:
    origin.files["f"] = Resource(payload(9 * MIB), stall_at=5 * MIB, stalls=1)
    spec = spec_for(origin.url("f"), 9 * MIB)
    cdn = make_cdn()
    rec = Recorder()
    cdn.start_fill(spec, rec)
    await rec.wait_piece(0)
    await cdn.delete(spec.task_id)
    assert not cdn.store.task_dir(spec.task_id).exists()
    assert not cdn.in_use(spec.task_id)


def _plant(cdn, name: str, access_ms: int, size: int, interval: int = 0) -> str:  # type: ignore[no-untyped-def]
    """A finished cache entry on disk, without any fill."""
    from supernode.cdn.storage import FileMeta

    tid = task_id(f"http://example.invalid/{name}")
    cdn.store.ensure_dir(tid)
    cdn.store.data_path(tid).write_bytes(b"\0" * size)
    meta = FileMeta(tid, f"http://example.invalid/{name}", PS, size - 5, access_time=access_ms,
                    interval=interval, file_length=size, finish=True, success=True)  # fmt: skip
    cdn.store.write_meta(meta)
    return tid


async def test_gc_does_nothing_above_the_young_threshold(make_cdn, make_config) -> None:
    cdn = make_cdn(
        make_config(young_gc_threshold=100, full_gc_threshold=10), disk_free=lambda p: 101
    )
    tid = _plant(cdn, "a", 0, 100)
    assert cdn.gc_sweep(frozenset(), 1000.0) == 0
    assert cdn.store.data_path(tid).exists()


async def test_full_gc_removes_least_recently_used_first(make_cdn, make_config) -> None:
    cdn = make_cdn(
        make_config(young_gc_threshold=100, full_gc_threshold=50), disk_free=lambda p: 10
    )
    now = 10_000.0
    old = _plant(cdn, "old", 1_000_000, 300)
    new = _plant(cdn, "new", 9_000_000, 200)
    mid = _plant(cdn, "mid", 5_000_000, 100)
    reclaimed = cdn.gc_sweep(frozenset(), now)
    assert reclaimed > 300  # the data file and its .meta
    assert not cdn.store.data_path(old).exists()
    assert cdn.store.data_path(new).exists() and cdn.store.data_path(mid).exists()
    assert cdn.metrics.gc_disks._value.get() == 1
    assert cdn.metrics.last_gc_disks_timestamp._value.get() == now
    cdn.gc_sweep(frozenset(), now)  # one more run: the next least recently used
    assert not cdn.store.data_path(mid).exists() and cdn.store.data_path(new).exists()


async def test_gc_never_removes_files_in_use_or_live(origin: Origin, make_cdn, make_config) -> None:
    config = make_config(young_gc_threshold=100, full_gc_threshold=50, clean_ratio=10)
    cdn = make_cdn(config, disk_free=lambda p: 0)
    served = _plant(cdn, "served", 0, 50)
    live = _plant(cdn, "live", 0, 50)
    idle = _plant(cdn, "idle", 0, 50)
    origin.files["f"] = Resource(payload(9 * MIB), stall_at=5 * MIB, stalls=1)
    spec = spec_for(origin.url("f"), 9 * MIB)
    rec = Recorder()
    cdn.start_fill(spec, rec)
    await rec.wait_piece(0)
    with cdn.pinned(served):  # what the download port does while it sends the file
        reclaimed = cdn.gc_sweep(frozenset({live}), 1e6)
    assert reclaimed > 0 and not cdn.store.data_path(idle).exists()
    for kept in (served, live, spec.task_id):
        assert cdn.store.data_path(kept).exists()
    cdn.gc_sweep(frozenset({live}), 1e6)
    assert not cdn.store.data_path(served).exists()  # unpinned: fair game now
    assert cdn.store.data_path(spec.task_id).exists()


async def test_young_gc_orders_cold_by_age_then_hot_by_size(make_cdn, make_config) -> None:
    config = make_config(young_gc_threshold=100, full_gc_threshold=10, clean_ratio=10)
    cdn = make_cdn(config, disk_free=lambda p: 50)
    now_ms = 100_000_000
    hot_big = _plant(cdn, "hot-big", now_ms - 1000, 300, interval=5000)
    hot_small = _plant(cdn, "hot-small", now_ms - 1000, 100, interval=5000)
    cold_old = _plant(cdn, "cold-old", 0, 10)
    cold_new = _plant(cdn, "cold-new", now_ms - 10, 10)
    from supernode.cdn.storage import gc_order

    order = gc_order(cdn.store, lambda t: False, now_ms, 0, full=False)
    assert order == [cold_old, cold_new, hot_small, hot_big]


async def test_gc_removed_task_refills_on_next_trigger(
    origin: Origin, make_cdn, make_config
) -> None:
    config = make_config(young_gc_threshold=100, full_gc_threshold=50, clean_ratio=10)
    cdn = make_cdn(config, disk_free=lambda p: 0)
    data = payload(3000)
    origin.files["f"] = Resource(data)
    spec = spec_for(origin.url("f"), len(data))
    await fill(cdn, spec)
    assert cdn.gc_sweep(frozenset(), 1e9) > 0
    assert cdn.servable(spec.task_id) is None
    rec = await fill(cdn, spec)
    assert rec.outcome is not None and not rec.outcome.cache_hit
    assert cdn.store.data_path(spec.task_id).stat().st_size == len(data) + 5


async def test_resume_of_a_complete_but_unrecorded_file_keeps_its_short_last_piece(
    origin: Origin, make_cdn
) -> None:
    """The supernode died after the last byte hit the disk but before `.meta` said success:
    the restart finds every piece, fetches nothing, and the file is not padded."""
    for size in (54, 9 * MIB + 7):
        data = payload(size)
        name = f"f{size}"
        spec, first = await filled_then_stopped(origin, make_cdn, data, name)
        meta_path = first.store.meta_path(spec.task_id)
        meta = json.loads(meta_path.read_bytes())
        meta.update(finish=False, success=False)
        meta_path.write_text(json.dumps(meta))
        served = origin.body_bytes
        second = make_cdn()
        rec = await fill(second, spec)
        assert rec.outcome is not None, rec
        assert rec.outcome.http_file_length == len(data)
        assert rec.file_md5 == hashlib.md5(data).hexdigest()
        assert origin.body_bytes - served <= 1, "nothing left to fetch but the range probe"
        expected = b"".join(reference_pieces(data, PS))
        assert second.store.data_path(spec.task_id).read_bytes() == expected
        await second.close()
