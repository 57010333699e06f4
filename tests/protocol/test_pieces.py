"""Piece size rule, counts and framing (§6.1, §7), checked against an independent framing."""

from __future__ import annotations

import hashlib
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from supernode.protocol import pieces

MIB = 1024 * 1024


@pytest.mark.parametrize(
    ("mib", "size"),
    [(0, 4), (1, 4), (200, 4), (299, 4), (300, 5), (1024, 12), (1299, 14), (1300, 15), (9000, 15)],
)
def test_piece_size_rule(mib, size):
    assert pieces.piece_size_for(mib * MIB) == size * MIB


def test_unknown_length_gets_the_default():
    assert pieces.piece_size_for(-1) == 4 * MIB
    assert pieces.registration_piece_total(-1, 4 * MIB) == 0


def test_reference_examples():
    assert pieces.frame_header(4 * MIB - 5, 4 * MIB).hex() == "043ffffb"
    assert pieces.frame_header(10, 4 * MIB).hex() == "0400000a"
    assert pieces.frame_header(0, 4 * MIB).hex() == "04000000"
    wrapped = pieces.frame(b"helloworld", 4 * MIB)
    assert wrapped.hex() == "0400000a68656c6c6f776f726c647f"
    assert pieces.piece_md5(wrapped) == "904bc91e4244a65ff76b6ba4af620ce1:15"
    assert pieces.piece_count(10 * MIB, 4 * MIB) == 3
    assert pieces.wrapped_length(10 * MIB, 4 * MIB) == 10485775
    assert pieces.content_length(2, 10 * MIB, 4 * MIB) == 2097162
    assert pieces.piece_count(0, 4 * MIB) == 1
    assert pieces.wrapped_length(0, 4 * MIB) == 5


def _independent_frame(content: bytes, piece_size: int) -> bytes:
    return struct.pack(">I", len(content) | piece_size << 4) + content + b"\x7f"


@given(st.binary(max_size=300), st.sampled_from([4, 5, 12, 15]))
def test_frame_matches_independent_framing(content, size_mib):
    size = size_mib * MIB
    wrapped = pieces.frame(content, size)
    assert wrapped == _independent_frame(content, size)
    assert pieces.parse_frame_header(wrapped[:4]) == (len(content), size)
    assert pieces.piece_md5(wrapped) == f"{hashlib.md5(wrapped).hexdigest()}:{len(wrapped)}"


@given(st.integers(min_value=0, max_value=4 * 1024 * MIB), st.sampled_from([4, 7, 15]))
def test_counts_cover_every_byte_once(length, size_mib):
    size = size_mib * MIB
    count = pieces.piece_count(length, size)
    last = pieces.content_length(count - 1, length, size)
    assert last > 0 or length == 0
    assert pieces.content_length(count, length, size) == 0
    assert (count - 1) * (size - 5) + last == length
    assert pieces.raw_offset(count - 1, size) + last == length
    assert pieces.wrapped_length(length, size) == length + 5 * count


def test_ranges():
    assert pieces.piece_range(0, 4 * MIB) == "0-4194303"
    assert pieces.piece_range(2, 4 * MIB) == "8388608-12582911"
    assert pieces.piece_num_of_range("8388608-12582911") == 2
    assert pieces.parse_range("0-0") == (0, 0)
    for bad in ["", "5-4", "a-b", "-1-3", "1-", "1-2-3", " 1-2", "1" * 20 + "-2"]:
        with pytest.raises(ValueError):
            pieces.parse_range(bad)
