"""Pure request parsing and range translation of the uploader's `/peer/file/<name>` (§6.5).

A remote dfget asks for wrapped coordinates (`Range: bytes=s-e` of the CDN file); the
`.service` file holds raw bytes, so the raw start is `s − 5·pieceNum` and the reply is
rebuilt as `header | raw bytes | 0x7F`, shortened at EOF. With `cdnSource: source` the
coordinates are raw already and nothing is added.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

from supernode.protocol.pieces import PIECE_TAIL, PIECE_WRAP_SIZE

_INT_RE = re.compile(r"^[+-]?\d{1,19}$")
RANGE_NOT_SATISFIABLE = "range not satisfiable"


class RangeNotSatisfiable(ValueError):
    """→ HTTP 416."""


@dataclass(frozen=True, slots=True)
class UploadParams:
    """The request as parsed: wrapped start, requested length, piece number and size."""

    start: int
    length: int
    piece_num: int
    piece_size: int


@dataclass(frozen=True, slots=True)
class UploadPlan:
    """What to send: `pad` is 5 (header + trailer around the raw bytes) or 0 (source mode)."""

    raw_start: int
    length: int
    pad: int
    piece_size: int

    @property
    def content_length(self) -> int:
        """Raw bytes read from the file."""
        return self.length - self.pad

    def header(self) -> bytes:
        """`(length−5) | pieceSize<<4`, big-endian, truncated to 32 bits as Go's uint32()."""
        value = (self.content_length | (self.piece_size << 4)) & 0xFFFFFFFF
        return struct.pack(">I", value)

    @staticmethod
    def trailer() -> bytes:
        return PIECE_TAIL


def _parse_int(text: str, what: str) -> int:
    if not _INT_RE.match(text):
        raise ValueError(f"invalid {what}: {text!r}")
    return int(text)


def parse_upload_params(range_header: str, piece_num: str, piece_size: str) -> UploadParams:
    """As `parseParams`: exactly one `=` and one `-`, e > s; ValueError → HTTP 400."""
    num = _parse_int(piece_num, "pieceNum")
    size = _parse_int(piece_size, "pieceSize")
    if range_header.count("=") != 1:
        raise ValueError(f"invalid range: {range_header}")
    spec = range_header.split("=")[1]
    if spec.count("-") != 1:
        raise ValueError(f"invalid range: {spec}")
    start_text, end_text = spec.split("-")
    start = _parse_int(start_text, "range start")
    end = _parse_int(end_text, "range end")
    if end <= start:
        raise ValueError(f"invalid range: {spec}")
    return UploadParams(start=start, length=end - start + 1, piece_num=num, piece_size=size)


def amend_range(size: int, params: UploadParams, *, wrapped: bool) -> UploadPlan:
    """Translate to raw coordinates and clip at EOF; RangeNotSatisfiable → HTTP 416."""
    pad = PIECE_WRAP_SIZE if wrapped else 0
    raw_start = params.start - params.piece_num * pad if wrapped else params.start
    length = params.length
    if length < pad or raw_start < 0:
        raise RangeNotSatisfiable(RANGE_NOT_SATISFIABLE)
    # Go answers garbage past EOF in wrapped mode; a start beyond the data is refused here.
    if raw_start > size or (not wrapped and raw_start >= size):
        raise RangeNotSatisfiable(RANGE_NOT_SATISFIABLE)
    if raw_start + length - pad > size:
        length = size - raw_start + pad
    return UploadPlan(raw_start=raw_start, length=length, pad=pad, piece_size=params.piece_size)
