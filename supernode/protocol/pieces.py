"""Piece size rule, piece ranges and counts, and the piece framing of the data plane (§6.1, §7)."""

from __future__ import annotations

import hashlib
import re
import struct

MIB = 1024 * 1024
DEFAULT_PIECE_SIZE = 4 * MIB
MAX_PIECE_SIZE = 15 * MIB
PIECE_HEAD_SIZE = 4
PIECE_TAIL = b"\x7f"
PIECE_WRAP_SIZE = PIECE_HEAD_SIZE + len(PIECE_TAIL)  # 5 bytes of framing per piece
CONTENT_LEN_MASK = 0x00FFFFFF
_RANGE_RE = re.compile(r"^(\d{1,19})-(\d{1,19})$")


def piece_size_for(http_file_length: int) -> int:
    """4 MiB up to 200 MiB; then floor(len/100 MiB) + 2 MiB, capped at 15 MiB."""
    if http_file_length <= 200 * MIB:
        return DEFAULT_PIECE_SIZE
    gap = http_file_length // (100 * MIB)
    return min(gap * MIB + 2 * MIB, MAX_PIECE_SIZE)


def piece_count(http_file_length: int, piece_size: int) -> int:
    """Real piece count of the wrapped file; a zero-length origin still has one piece."""
    content = piece_size - PIECE_WRAP_SIZE
    return max(1, -(-http_file_length // content))


def registration_piece_total(http_file_length: int, piece_size: int) -> int:
    """`pieceTotal` at registration: ceil(len/pieceSize), 0 when the length is unknown."""
    if http_file_length <= 0:
        return 0
    return -(-http_file_length // piece_size)


def wrapped_length(http_file_length: int, piece_size: int) -> int:
    return http_file_length + PIECE_WRAP_SIZE * piece_count(http_file_length, piece_size)


def content_length(piece_num: int, http_file_length: int, piece_size: int) -> int:
    """Raw bytes carried by piece `piece_num` of a file of `http_file_length` bytes."""
    content = piece_size - PIECE_WRAP_SIZE
    start = piece_num * content
    return max(0, min(content, http_file_length - start))


def raw_offset(piece_num: int, piece_size: int) -> int:
    """Offset in the origin file where piece `piece_num`'s content starts."""
    return piece_num * (piece_size - PIECE_WRAP_SIZE)


def piece_range(piece_num: int, piece_size: int) -> str:
    """Wrapped coordinates as the supernode hands them out (the last one may overshoot)."""
    start = piece_num * piece_size
    return f"{start}-{start + piece_size - 1}"


def parse_range(text: str) -> tuple[int, int]:
    """`"a-b"` → (a, b); ValueError unless 0 ≤ a ≤ b."""
    match = _RANGE_RE.match(text)
    if not match:
        raise ValueError(f"invalid range {text!r}")
    start, end = int(match.group(1)), int(match.group(2))
    if end < start:
        raise ValueError(f"inverted range {text!r}")
    return start, end


def piece_num_of_range(text: str) -> int:
    """Piece number the way the Go supernode derives it: start / (end - start + 1)."""
    start, end = parse_range(text)
    return start // (end - start + 1)


def frame_header(content_len: int, piece_size: int) -> bytes:
    """Big-endian u32 `contentLen | pieceSize << 4`."""
    return struct.pack(">I", content_len | (piece_size << 4))


def parse_frame_header(header: bytes) -> tuple[int, int]:
    """→ (contentLen, pieceSize)."""
    (value,) = struct.unpack(">I", header)
    return value & CONTENT_LEN_MASK, (value & ~CONTENT_LEN_MASK) >> 4


def frame(content: bytes, piece_size: int) -> bytes:
    """A whole wrapped piece (small pieces and tests; the data plane streams instead)."""
    return frame_header(len(content), piece_size) + content + PIECE_TAIL


def piece_md5(wrapped: bytes) -> str:
    """`"<md5 of the wrapped piece>:<wrapped length>"`, the value of `pieceMd5`."""
    return f"{hashlib.md5(wrapped).hexdigest()}:{len(wrapped)}"
