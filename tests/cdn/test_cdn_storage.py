"""Cache files: `.meta` and `.md5` formats, atomic writes, id checks; the origin rate limiter."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from supernode.cdn.source import RateLimiter, task_headers
from supernode.cdn.storage import (
    CacheStore,
    FileMeta,
    InvalidTaskId,
    decode_md5s,
    decode_meta,
    encode_md5s,
    encode_meta,
    write_atomic,
)

TID = "7ab65f713a207a0603ca24711fa209c81359ab72fbf52913cbb54c67cf8ccf05"


def test_md5_file_worked_example() -> None:
    raw = encode_md5s(["904bc91e4244a65ff76b6ba4af620ce1:15"], "fc5e038d38a57032085441e7fe7010b0")
    assert raw == (
        b"904bc91e4244a65ff76b6ba4af620ce1:15\n"
        b"fc5e038d38a57032085441e7fe7010b0\n"
        b"5b78d792b9eed97242abcafb0cf07c4c09955ebf"
    )
    assert decode_md5s(raw, "fc5e038d38a57032085441e7fe7010b0") == (
        "904bc91e4244a65ff76b6ba4af620ce1:15",
    )
    assert decode_md5s(raw, "0" * 32) is None  # file md5 does not match the .meta
    assert decode_md5s(raw.replace(b"904b", b"904c"), "fc5e038d38a57032085441e7fe7010b0") is None
    assert decode_md5s(b"\xff\xfe", "x") is None


def test_meta_is_compact_go_style_json_and_round_trips() -> None:
    meta = FileMeta(TID, "http://h/a?x=1&y=<2>", 4194304, 10, biz_id="id", access_time=5,
                    file_length=15, real_md5="r", last_modified=7, etag='"e"', finish=True,
                    success=True)  # fmt: skip
    raw = encode_meta(meta)
    assert b" " not in raw and b"\\u0026" in raw and b"\\u003c" in raw
    assert list(json.loads(raw)) == [
        "taskID", "url", "pieceSize", "httpFileLen", "bizId", "accessTime", "interval",
        "fileLength", "md5", "realMd5", "lastModified", "eTag", "finish", "success",
    ]  # fmt: skip
    assert decode_meta(raw) == meta


def test_meta_decoding_is_tolerant_but_strict_on_types() -> None:
    older = json.dumps({"TaskID": TID, "PIECESIZE": 4194304, "identifier": "abc", "extra": 1})
    meta = decode_meta(older.encode())
    assert meta is not None and meta.biz_id == "abc" and meta.piece_size == 4194304
    assert decode_meta(b"not json") is None
    assert decode_meta(b"[]") is None
    assert decode_meta(json.dumps({"taskID": TID, "pieceSize": "4"}).encode()) is None
    assert decode_meta(json.dumps({"taskID": TID, "pieceSize": 4, "finish": 1}).encode()) is None


@pytest.mark.parametrize(
    "bad", ["", "../" + "a" * 61, TID.upper(), TID[:-1], TID + "0", "/" + TID[1:], TID[:-1] + "g"]
)
def test_store_refuses_anything_but_64_lowercase_hex(tmp_path: Path, bad: str) -> None:
    store = CacheStore(tmp_path)
    with pytest.raises(InvalidTaskId):
        store.data_path(bad)
    with pytest.raises(InvalidTaskId):
        store.remove(bad)
    assert list(tmp_path.iterdir()) == []


def test_layout_and_atomic_writes(tmp_path: Path) -> None:
    store = CacheStore(tmp_path)
    assert store.data_path(TID) == tmp_path / "7ab" / TID
    store.write_meta(FileMeta(TID, "u", 4194304, 1))
    store.write_md5s(TID, ["a:5"], "b")
    assert sorted(p.name for p in (tmp_path / "7ab").iterdir()) == [TID + ".md5", TID + ".meta"]
    target = tmp_path / "x"
    write_atomic(target, b"one")
    write_atomic(target, b"two")
    assert target.read_bytes() == b"two" and [p.name for p in tmp_path.glob("x*")] == ["x"]
    (tmp_path / "7ab" / TID).write_bytes(b"12345")
    (tmp_path / "7ab" / "junk").write_bytes(b"")
    (tmp_path / "zzzz").mkdir()
    assert store.list_task_ids() == [TID]
    assert store.remove(TID) > 5
    assert store.list_task_ids() == []
    assert (tmp_path / "7ab" / "junk").exists()


def test_task_headers_join_duplicates_and_drop_empty_values() -> None:
    headers = task_headers((("X-A", "1"), ("x-a", "2"), ("X-Empty", ""), ("B", "3")))
    assert dict(headers) == {"X-A": "1,2", "B": "3"}


async def test_rate_limiter_makes_callers_repay_their_debt(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(asyncio, "sleep", fake_sleep)
    limiter = RateLimiter(999_001)  # rounded up to a multiple of 1000, as the original does
    assert limiter.rate == 1_000_000
    await limiter.acquire(3_000_000)
    assert slept and 2.9 < slept[0] <= 3.0
    unlimited = RateLimiter(0)
    await unlimited.acquire(10**12)
    assert len(slept) == 1
