"""Where downloaded bytes land: a temp file next to the output written with pwrite at raw
offsets, the uploader's `<home>/data/<TaskFileName>.service` (a hard link of the same inode
when possible, a second copy otherwise), the whole-file md5 computed behind the writes, and
the final fsync + rename (§6.1, §13.1).

How the md5 works: pieces land out of order, so the digest follows a frontier. Each verified
range is recorded with `mark_done`; a worker thread re-reads (from the page cache) and hashes
whatever is contiguous after the frontier. At the end only the tail is left to hash.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import os
import tempfile
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from dfget_client.errors import VerifyError, WriteError

_IOV_MAX = 512
_READ_CHUNK = 1 << 20
SYNC_EVERY = 64 << 20  # bytes between background fdatasync calls


def _pwrite_all(fd: int, parts: Sequence[memoryview | bytes], offset: int) -> int:
    total = 0
    for i in range(0, len(parts), _IOV_MAX):
        group = parts[i : i + _IOV_MAX]
        want = sum(len(p) for p in group)
        done = os.pwritev(fd, group, offset)
        if done < want:  # rare: finish the group byte by byte
            rest = memoryview(b"".join(group))[done:]
            position = offset + done
            while rest:
                n = os.pwrite(fd, rest, position)
                rest, position = rest[n:], position + n
        offset += want
        total += want
    return total


class TargetWriter:
    """Owns the temp file (and the `.service` copy) of one download attempt."""

    def __init__(
        self,
        output: Path,
        *,
        prefix: str,
        service_path: Path | None = None,
        hash_while_writing: bool = True,
    ) -> None:
        self.output = output
        # Off when every piece carries its own md5: the whole-file pass is then only needed
        # if the user asked for `--md5` (or a piece came unchecked), and is done at the end.
        self._hash_while_writing = hash_while_writing
        self.service_path = service_path
        self._prefix = prefix
        self.temp_path: Path | None = None
        self._fds: list[int] = []
        self.linked = False
        self._md5 = hashlib.md5()
        self._hashed = 0
        self._done: dict[int, int] = {}
        self._hashing: asyncio.Future[None] | None = None
        self._finishing = False
        self._syncing: asyncio.Future[None] | None = None
        self._unsynced = 0
        self._verified = 0
        self._closed = False
        self._inflight = 0
        self._idle = threading.Condition()
        # The kernel serializes buffered writes to one file (the inode lock), and its waiters
        # spin on the CPU; waiting here sleeps instead (perf: rwsem_spin_on_owner was 12% of a
        # download's CPU with four piece threads writing).
        self._write_lock = threading.Lock()
        self.high_water = 0

    def open(self) -> None:
        try:
            self.output.parent.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix=self._prefix, dir=self.output.parent)
        except OSError as exc:
            raise WriteError(f"cannot create a file next to {self.output}: {exc.strerror}") from exc
        self.temp_path = Path(name)
        self._fds = [fd]
        if self.service_path is not None:
            self._open_service(self.service_path)

    def _open_service(self, path: Path) -> None:
        """Same inode as the temp file when possible: one write serves both."""
        assert self.temp_path is not None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            os.link(self.temp_path, path)
            self.linked = True
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                raise WriteError(f"cannot create {path}: {exc.strerror}") from exc
            self._fds.append(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644))

    # ---- called from worker threads ------------------------------------------------------

    @contextlib.contextmanager
    def _using_fds(self) -> Iterator[list[int]]:
        """Threads may still run after their task was cancelled: never close under them."""
        with self._idle:
            if self._closed:
                raise WriteError("the download file is already closed")
            self._inflight += 1
        try:
            yield self._fds
        finally:
            with self._idle:
                self._inflight -= 1
                self._idle.notify_all()

    def write_at(self, offset: int, parts: Sequence[memoryview | bytes]) -> None:
        with self._using_fds() as fds, self._write_lock:
            for fd in fds:
                written = _pwrite_all(fd, parts, offset)
        self.high_water = max(self.high_water, offset + written)

    def _hash_until(self, end: int) -> None:
        with self._using_fds() as fds:
            while self._hashed < end:
                data = os.pread(fds[0], min(_READ_CHUNK, end - self._hashed), self._hashed)
                if not data:
                    raise WriteError(f"{self.temp_path} is shorter than {end} bytes")
                self._md5.update(data)
                self._hashed += len(data)

    # ---- called on the event loop --------------------------------------------------------

    def mark_done(self, start: int, end: int) -> None:
        """Bytes [start, end) are written and verified; hash forward in the background."""
        if end > start:
            self._done[start] = max(end, self._done.get(start, end))
            self._unsynced += end - start
            self._kick()
            self._sync_soon()

    def _sync_soon(self) -> None:
        """Flush to disk as we go, so the final fsync (and the disk) is not one big burst."""
        if self._unsynced < SYNC_EVERY or self._finishing:
            return
        if self._syncing is not None and not self._syncing.done():
            return
        self._unsynced = 0
        self._syncing = asyncio.get_running_loop().run_in_executor(None, self._datasync)

    def _datasync(self) -> None:
        with contextlib.suppress(OSError, WriteError), self._using_fds() as fds:
            os.fdatasync(fds[0])

    def _frontier(self) -> int:
        """How far the verified bytes reach from the hash frontier (ranges may overlap)."""
        position = self._hashed
        while True:
            reached = [start for start in self._done if start <= position]
            if not reached:
                return position
            for start in reached:
                position = max(position, self._done.pop(start))

    def _kick(self) -> None:
        if not self._hash_while_writing:
            return
        if self._finishing or (self._hashing is not None and not self._hashing.done()):
            return
        target = self._frontier()
        if target > self._hashed:
            loop = asyncio.get_running_loop()
            self._verified = max(self._verified, target)
            self._hashing = loop.run_in_executor(None, self._hash_until, target)
            self._hashing.add_done_callback(lambda _: self._kick_soon(loop))

    def _kick_soon(self, loop: asyncio.AbstractEventLoop) -> None:
        if not loop.is_closed():
            loop.call_soon(self._kick)

    async def finish(
        self,
        *,
        length: int | None,
        expected_md5: str = "",
        known_md5: str = "",
        require_complete: bool = False,
        need_md5: bool = True,
    ) -> str:
        """Trim, check completeness and md5, fsync and rename into place; → the file's md5
        ("" when `need_md5` is False and no md5 is expected: every piece was checked)."""
        assert self.temp_path is not None
        loop = asyncio.get_running_loop()
        self._finishing = True
        while self._hashing is not None and not self._hashing.done():
            await asyncio.shield(self._hashing)
        if self._syncing is not None:
            await asyncio.shield(self._syncing)
        if self._hashing is not None:
            self._hashing.result()  # a failed read surfaces here
        size = self.high_water if length is None or length < 0 else length
        if require_complete:
            self._verified = max(self._verified, self._frontier())
            if self._verified < size:
                raise VerifyError(f"only {self._verified} of {size} bytes were verified")
        if not (need_md5 or expected_md5 or known_md5):
            await loop.run_in_executor(None, self._trim, size)
            await loop.run_in_executor(None, self._commit, size)
            return ""
        md5 = known_md5 or await loop.run_in_executor(None, self._finish_digest, size)
        if expected_md5 and md5 != expected_md5.lower():
            raise VerifyError(f"md5 of the downloaded file is {md5}, expected {expected_md5}")
        await loop.run_in_executor(None, self._commit, size)
        return md5

    def _trim(self, size: int) -> None:
        for fd in self._fds:
            if os.fstat(fd).st_size != size:
                os.ftruncate(fd, size)

    def _finish_digest(self, size: int) -> str:
        self._trim(size)
        if self._hashed > size:  # never happens with verified pieces; start over to be safe
            self._md5, self._hashed = hashlib.md5(), 0
        self._hash_until(size)
        return self._md5.hexdigest()

    def _commit(self, size: int) -> None:
        assert self.temp_path is not None
        fd = self._fds[0]
        try:
            if os.fstat(fd).st_size != size:
                os.ftruncate(fd, size)
            mask = os.umask(0)
            os.umask(mask)
            os.fchmod(fd, 0o666 & ~mask)
            os.fsync(fd)
            os.replace(self.temp_path, self.output)
            dir_fd = os.open(self.output.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            raise WriteError(f"cannot move the download to {self.output}: {exc.strerror}") from exc
        self.temp_path = None
        self.close()

    def close(self) -> None:
        with self._idle:
            self._closed = True
            self._idle.wait_for(lambda: self._inflight == 0, timeout=30)
            fds, self._fds = self._fds, []
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)

    def abort(self, *, keep_service: bool = False) -> None:
        """Drop the temp file (and the `.service` copy unless the uploader may still use it)."""
        self.close()
        paths = [self.temp_path] + ([] if keep_service else [self.service_path])
        for path in paths:
            if path is not None:
                with contextlib.suppress(OSError):
                    path.unlink()
        self.temp_path = None
