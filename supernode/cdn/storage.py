"""The cache directory: data, `.meta` and `.md5` files per task, atomic writes, GC order (§9.3)."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from supernode.protocol.ids import is_task_id

META_SUFFIX = ".meta"
READ_CHUNK = 1 << 20
MD5_SUFFIX = ".md5"


class InvalidTaskId(ValueError):
    """Not 64 lowercase hex characters: never turned into a path."""


@dataclass(frozen=True, slots=True)
class FileMeta:
    """The `.meta` JSON of the original (times in milliseconds since the epoch)."""

    task_id: str
    url: str
    piece_size: int
    http_file_len: int
    biz_id: str = ""
    access_time: int = 0
    interval: int = 0
    file_length: int = 0
    md5: str = ""
    real_md5: str = ""
    last_modified: int = 0
    etag: str = ""
    finish: bool = False
    success: bool = False

    def replace(self, **changes: Any) -> FileMeta:
        return dataclasses.replace(self, **changes)


# Python attribute → JSON key, in the original's field order.
_META_KEYS = (
    ("task_id", "taskID"),
    ("url", "url"),
    ("piece_size", "pieceSize"),
    ("http_file_len", "httpFileLen"),
    ("biz_id", "bizId"),
    ("access_time", "accessTime"),
    ("interval", "interval"),
    ("file_length", "fileLength"),
    ("md5", "md5"),
    ("real_md5", "realMd5"),
    ("last_modified", "lastModified"),
    ("etag", "eTag"),
    ("finish", "finish"),
    ("success", "success"),
)
# Older Go releases spelled bizId as "identifier"; Go's decoder matches keys case-insensitively.
_META_ALIASES = {"identifier": "biz_id"}


def encode_meta(meta: FileMeta) -> bytes:
    """Compact JSON with Go's HTML escaping, as `json.Marshal` writes it."""
    document = {key: getattr(meta, attr) for attr, key in _META_KEYS}
    text = json.dumps(document, separators=(",", ":"), ensure_ascii=False)
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(char, escape)
    text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return text.encode("utf-8")


def decode_meta(raw: bytes) -> FileMeta | None:
    """None for anything that is not a usable `.meta` document."""
    try:
        document = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(document, dict):
        return None
    by_key = {key.lower(): attr for attr, key in _META_KEYS} | _META_ALIASES
    values: dict[str, Any] = {}
    for key, value in document.items():
        attr = by_key.get(str(key).lower())
        if attr is not None:
            values[attr] = value
    types = {f.name: f.type for f in dataclasses.fields(FileMeta)}
    for attr, value in values.items():
        expected = {"str": str, "int": int, "bool": bool}[str(types[attr])]
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            return None
    if "task_id" not in values or "piece_size" not in values:
        return None
    values.setdefault("url", "")
    values.setdefault("http_file_len", -1)
    return FileMeta(**values)


def encode_md5s(piece_md5s: list[str] | tuple[str, ...], file_md5: str) -> bytes:
    """Piece md5 lines, the file md5, then SHA-1 over all of them concatenated (§6.2)."""
    lines = [*piece_md5s, file_md5]
    check = hashlib.sha1("".join(lines).encode("ascii")).hexdigest()
    return "\n".join([*lines, check]).encode("ascii")


def decode_md5s(raw: bytes, file_md5: str) -> tuple[str, ...] | None:
    """The piece md5s when the SHA-1 line and the file md5 both check out, else None."""
    try:
        lines = raw.decode("ascii").split("\n")
    except UnicodeDecodeError:
        return None
    if len(lines) < 3:
        return None
    body, check = lines[:-1], lines[-1]
    if hashlib.sha1("".join(body).encode("ascii")).hexdigest() != check:
        return None
    if body[-1] != file_md5:
        return None
    return tuple(body[:-1])


def write_atomic(path: Path, data: bytes) -> None:
    """Write a sibling temp file, fsync it, rename it over `path`, fsync the directory."""
    tmp = path.with_name(f"{path.name}.tmp.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    os.close(fd)
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def md5_of_range(fd: int, offset: int, length: int) -> str:
    """`md5:len` of `length` bytes of the file at `offset`, read in bounded chunks."""
    hasher = hashlib.md5()
    remaining = length
    while remaining:
        data = os.pread(fd, min(READ_CHUNK, remaining), offset)
        if not data:
            raise OSError(f"unexpected end of data file at {offset}")
        hasher.update(data)
        offset += len(data)
        remaining -= len(data)
    return f"{hasher.hexdigest()}:{length}"


class CacheStore:
    """Files of one download root: `<root>/<id[:3]>/<id>`, `<id>.meta`, `<id>.md5`."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @staticmethod
    def check_id(task_id: str) -> str:
        if not isinstance(task_id, str) or not is_task_id(task_id):
            raise InvalidTaskId(f"invalid task id {task_id!r}: want 64 lowercase hex characters")
        return task_id

    def task_dir(self, task_id: str) -> Path:
        return self.root / self.check_id(task_id)[:3]

    def data_path(self, task_id: str) -> Path:
        return self.task_dir(task_id) / task_id

    def meta_path(self, task_id: str) -> Path:
        return self.task_dir(task_id) / (task_id + META_SUFFIX)

    def md5_path(self, task_id: str) -> Path:
        return self.task_dir(task_id) / (task_id + MD5_SUFFIX)

    def ensure_dir(self, task_id: str) -> Path:
        directory = self.task_dir(task_id)
        directory.mkdir(parents=True, exist_ok=True)
        return directory

    def read_meta(self, task_id: str) -> FileMeta | None:
        try:
            raw = self.meta_path(task_id).read_bytes()
        except OSError:
            return None
        meta = decode_meta(raw)
        return meta if meta is not None and meta.task_id == task_id else None

    def write_meta(self, meta: FileMeta) -> None:
        self.ensure_dir(meta.task_id)
        write_atomic(self.meta_path(meta.task_id), encode_meta(meta))

    def read_md5s(self, task_id: str, file_md5: str) -> tuple[str, ...] | None:
        try:
            raw = self.md5_path(task_id).read_bytes()
        except OSError:
            return None
        return decode_md5s(raw, file_md5)

    def write_md5s(
        self, task_id: str, piece_md5s: list[str] | tuple[str, ...], file_md5: str
    ) -> None:
        write_atomic(self.md5_path(task_id), encode_md5s(piece_md5s, file_md5))

    def piece_md5(self, task_id: str, offset: int, length: int) -> str:
        """`md5:len` of a byte range of the data file as it is on disk now (blocking)."""
        fd = os.open(self.data_path(task_id), os.O_RDONLY)
        try:
            return md5_of_range(fd, offset, length)
        finally:
            os.close(fd)

    def data_size(self, task_id: str) -> int:
        """Size of the data file, −1 when there is none."""
        try:
            return self.data_path(task_id).stat().st_size
        except OSError:
            return -1

    def open_data(self, task_id: str, *, truncate: bool) -> int:
        """A read/write descriptor on the data file (created when missing)."""
        self.ensure_dir(task_id)
        flags = os.O_RDWR | os.O_CREAT | (os.O_TRUNC if truncate else 0)
        return os.open(self.data_path(task_id), flags, 0o644)

    def remove(self, task_id: str) -> int:
        """Delete every file of the task (data, meta, md5, stray temp files); bytes freed."""
        directory = self.task_dir(task_id)
        freed = 0
        try:
            entries = list(os.scandir(directory))
        except OSError:
            return 0
        for entry in entries:
            if entry.name == task_id or entry.name.startswith(task_id + "."):
                with contextlib.suppress(OSError):
                    size = entry.stat(follow_symlinks=False).st_size
                    os.unlink(entry.path)
                    freed += size
        with contextlib.suppress(OSError):
            directory.rmdir()  # only succeeds when empty
        return freed

    def list_task_ids(self) -> list[str]:
        """Ids of every task with a file under the root (data, meta or md5)."""
        found: set[str] = set()
        try:
            prefixes = list(os.scandir(self.root))
        except OSError:
            return []
        for prefix in prefixes:
            if not prefix.is_dir(follow_symlinks=False) or len(prefix.name) != 3:
                continue
            with contextlib.suppress(OSError):
                for entry in os.scandir(prefix.path):
                    stem = entry.name.split(".", 1)[0]
                    if is_task_id(stem) and stem.startswith(prefix.name):
                        found.add(stem)
        return sorted(found)


def gc_order(
    store: CacheStore, skip: Callable[[str], bool], now_ms: int, threshold_ms: int, *, full: bool
) -> list[str]:
    """Disk GC candidates (§9.4) in deletion order: files without a `.meta` first, then cold
    tasks least recently used first, then hot ones (re-accessed within their interval,
    young GC only) smallest first. `skip` says which tasks are live or in use."""
    orphans: list[str] = []
    cold: list[tuple[int, str]] = []
    hot: list[tuple[int, str]] = []
    for task_id in store.list_task_ids():
        if skip(task_id):
            continue
        meta = store.read_meta(task_id)
        if meta is None:
            orphans.append(task_id)
            continue
        gap = now_ms - meta.access_time
        if not full and meta.interval > 0 and gap <= meta.interval + threshold_ms:
            hot.append((max(store.data_size(task_id), 0), task_id))
        else:
            cold.append((-gap, task_id))
    return orphans + [t for _, t in sorted(cold)] + [t for _, t in sorted(hot)]
