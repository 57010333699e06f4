"""Task ids, URL filters and client ids against the reference's worked examples (§8)."""

from __future__ import annotations

import hashlib

from hypothesis import given
from hypothesis import strategies as st

from supernode.protocol import ids

KEY_HEX = "3e492470672d7e41537e7350277271755f604f68266c7a23395d223d3b6e4525"


def test_key_is_the_reference_constant():
    assert ids.TASK_ID_KEY.encode().hex() == KEY_HEX


def test_worked_examples():
    assert (
        ids.task_id("http://10.0.0.9/helloworld.txt")
        == "7ab65f713a207a0603ca24711fa209c81359ab72fbf52913cbb54c67cf8ccf05"
    )
    plain = ids.task_id("http://example.com/file.tar.gz")
    assert plain.startswith("5da550cc") and plain.endswith("759f781")
    tagged = ids.task_id("http://example.com/file.tar.gz", identifier="abc")
    assert tagged.startswith("1d8d88e2") and tagged.endswith("a7f590")


def test_md5_wins_over_identifier_and_range_is_appended():
    url = "http://h/f"
    assert ids.task_id(url, md5="m", identifier="i") == ids.task_id(url, md5="m")
    key = bytes.fromhex(KEY_HEX).decode()
    expected = hashlib.sha256((key + url + "i" + "bytes=0-9" + key).encode()).hexdigest()
    assert ids.task_id(url, identifier="i", range_header="bytes=0-9") == expected


def test_filter_url_cases():
    url = "http://h/p?a=1&b=2&c=3"
    assert ids.filter_url(url, ["b"]) == "http://h/p?a=1&c=3"
    assert ids.filter_url(url, ["a", "b", "c"]) == "http://h/p"
    assert ids.filter_url(url, []) == url
    assert ids.filter_url("http://h/p", ["a"]) == "http://h/p"
    assert ids.filter_url("http://h/p?", ["a"]) == "http://h/p?"
    # original encoding and order are kept; keys are compared before the first '='
    assert ids.filter_url("http://h/p?x=%2F&sig=a=b&y", ["sig"]) == "http://h/p?x=%2F&y"
    assert ids.split_filter("sig&expires&") == ["sig", "expires"]


@given(
    st.lists(st.from_regex(r"[a-z]{1,3}=[a-z0-9]{0,3}", fullmatch=True), max_size=6),
    st.lists(st.from_regex(r"[a-z]{1,3}", fullmatch=True), max_size=3),
)
def test_filter_url_keeps_exactly_the_unfiltered_items(items, drop):
    url = "http://h/p?" + "&".join(items) if items else "http://h/p"
    out = ids.filter_url(url, drop)
    kept = [i for i in items if i.split("=")[0] not in drop] if drop else items
    if not items or not drop:
        assert out == url
    elif kept:
        assert out == "http://h/p?" + "&".join(kept)
    else:
        assert out == "http://h/p"


def test_client_and_peer_ids():
    sign = ids.client_sign(4242, 1600000000.123)
    assert sign == "4242-1600000000.123"
    assert ids.client_id("10.0.0.5", sign) == "10.0.0.5-4242-1600000000.123"
    assert ids.task_file_name("helloworld.txt", sign) == "helloworld.txt-4242-1600000000.123"
    assert ids.peer_id("node5", "10.0.0.5", 17) == "node5-10.0.0.5-17"
    cid = ids.supernode_cid("10.0.0.1", "ab" * 32)
    assert cid == "cdnnode:10.0.0.1~" + "ab" * 32 and ids.is_supernode_cid(cid)
    assert ids.cdn_path("7ab65f") == "/download/7ab/7ab65f"
    assert ids.is_task_id("a" * 64) and not ids.is_task_id("A" * 64)
    assert not ids.is_task_id("../" + "a" * 61)
