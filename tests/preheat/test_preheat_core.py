"""The pure preheat state machine and manifest parsing."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from supernode.core import preheat as core
from supernode.core.preheat import (
    Blob,
    CreateDecision,
    PreheatSpec,
    PreheatStatus,
    PreheatType,
)
from supernode.preheat import manifests as m
from supernode.preheat.registry import parse_challenge

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
IMAGE = PreheatSpec(PreheatType.IMAGE, "http://r/v2/a/manifests/v1", digest=D1)
FILE = PreheatSpec(PreheatType.FILE, f"http://r/v2/a/blobs/{D2}")


def _image_job(n: int = 3) -> core.PreheatJob:
    job = core.start(core.new_job("j", IMAGE, 100.0, 1800.0))
    blobs = tuple(Blob(f"http://r/v2/a/blobs/{i}", f"t{i}") for i in range(n))
    return core.expanded(job, blobs, D1)


def test_new_jobs():
    file = core.new_job("f", FILE, 10.0, 60.0)
    assert file.status is PreheatStatus.WAITING and file.deadline == 70.0
    assert file.expanded and file.blobs == (Blob(FILE.url, "f", D2),)
    image = core.new_job("i", IMAGE, 10.0, 60.0)
    assert not image.expanded and image.blobs == () and image.manifest_digest == D1


def test_first_failing_blob_wins_and_finished_is_final():
    job = core.blob_failed(_image_job(), 1, "HTTP 500", 5.0)
    assert job.status is PreheatStatus.FAILED and job.error_msg == "http://r/v2/a/blobs/1 HTTP 500"
    job = core.blob_failed(job, 2, "later", 6.0)
    assert job.error_msg == "http://r/v2/a/blobs/1 HTTP 500" and job.finished_at == 5.0
    job = core.blob_succeeded(job, 0, False, 7.0)
    assert job.status is PreheatStatus.FAILED
    assert core.fail(job, "timeout", 8.0) is job


def test_success_needs_every_blob():
    job = _image_job(2)
    job = core.blob_succeeded(job, 0, False, 1.0)
    assert job.status is PreheatStatus.RUNNING
    job = core.blob_succeeded(job, 1, True, 2.0)
    assert job.status is PreheatStatus.SUCCESS and job.finished_at == 2.0
    empty = core.settle(core.expanded(core.start(core.new_job("e", IMAGE, 0, 9)), (), D1), 3.0)
    assert empty.status is PreheatStatus.FAILED and empty.error_msg == "nothing to preheat"


def test_resume_and_deadline():
    job = core.blob_started(core.blob_succeeded(_image_job(), 0, False, 1.0), 1)
    resumed = core.resume(job, 200.0)
    assert resumed is not None
    assert [b.status for b in resumed.blobs] == [
        PreheatStatus.SUCCESS,
        PreheatStatus.WAITING,
        PreheatStatus.WAITING,
    ]
    assert core.resume(job, 1900.0) is None
    assert core.overdue(job, 1900.0) and not core.overdue(job, 1899.9)
    # Re-expanding after a restart keeps what was already warmed.
    again = core.expanded(resumed, tuple(Blob(b.url, b.task_id) for b in resumed.blobs), D1)
    assert again.blobs_done == 1


def test_expiry():
    done = core.blob_succeeded(_image_job(1), 0, False, 50.0)
    assert not core.expired(done, 50.0 + 99.0, 100.0)
    assert core.expired(done, 150.0, 100.0)
    assert not core.expired(_image_job(), 10**9, 1.0)


def test_create_decisions():
    running = _image_job()
    success = core.blob_succeeded(_image_job(1), 0, False, 9.0)
    failed = core.fail(_image_job(), "x", 9.0)
    assert core.decide_create(None, None, IMAGE) is CreateDecision.NEW
    assert core.decide_create(running, None, IMAGE) is CreateDecision.KEEP
    assert core.decide_create(success, None, IMAGE) is CreateDecision.DUPLICATE
    assert core.decide_create(failed, None, IMAGE) is CreateDecision.RERUN
    moved = PreheatSpec(PreheatType.IMAGE, IMAGE.url, digest=D2)
    assert core.decide_create(success, None, moved) is CreateDecision.RERUN
    assert core.decide_create(None, running, IMAGE) is CreateDecision.REDIRECT
    assert core.decide_create(None, success, IMAGE) is CreateDecision.REDIRECT
    assert core.decide_create(None, failed, IMAGE) is CreateDecision.NEW
    rerun = core.rerun(failed, IMAGE, 500.0, 60.0)
    assert rerun.attempt == 2 and rerun.status is PreheatStatus.WAITING and rerun.deadline == 560.0


def test_redirect_follows_its_target():
    target = _image_job(1)
    follower = core.redirect_job("f", IMAGE, target, 1.0, 1800.0)
    assert follower.redirect_to == "j" and follower.blobs == ()
    assert core.follow(follower, target, 2.0) is follower
    done = core.blob_succeeded(target, 0, False, 3.0)
    assert core.follow(follower, done, 4.0).status is PreheatStatus.SUCCESS
    gone = core.follow(follower, None, 4.0)
    assert gone.status is PreheatStatus.FAILED and "deleted" in gone.error_msg
    message = core.redirect_message("abc")
    assert message == '{"Code":208,"Msg":"preheat task already exists, id:abc"}'
    begin = message.index(core.REDIRECT_PHRASE) + 32  # Harbor's arithmetic
    assert message[begin : message.rfind('"}')] == "abc"


@given(st.lists(st.tuples(st.integers(0, 3), st.booleans()), max_size=20))
def test_any_blob_event_order_is_consistent(events):
    job = _image_job(4)
    for now, (index, ok) in enumerate(events):
        before = job
        job = (
            core.blob_succeeded(job, index, False, now)
            if ok
            else core.blob_failed(job, index, "e", now)
        )
        if before.status.finished:
            assert job.status is before.status and job.error_msg == before.error_msg
    # The model: the job ends at the first failure, or when every blob has succeeded.
    done: set[int] = set()
    expected = PreheatStatus.RUNNING
    for index, ok in events:
        if expected is not PreheatStatus.RUNNING:
            break
        if not ok:
            expected = PreheatStatus.FAILED
        else:
            done.add(index)
            if len(done) == 4:
                expected = PreheatStatus.SUCCESS
    assert job.status is expected


def test_blob_digest_of():
    assert core.blob_digest_of(f"https://r:5000/v2/a/b/blobs/{D1}?x=1") == D1
    assert core.blob_digest_of("https://r/v2/a/blobs/sha256:abc") == ""
    assert core.blob_digest_of(f"https://r/files/blobs/{D1}") == ""


# ---- manifests ---------------------------------------------------------------------------


def test_parse_manifest_url():
    ref = m.parse_manifest_url("https://h:5000/v2/lib/app/manifests/v1.2")
    assert (ref.scheme, ref.host, ref.repository, ref.reference) == (
        "https",
        "h:5000",
        "lib/app",
        "v1.2",
    )
    assert ref.blob_url(D1) == f"https://h:5000/v2/lib/app/blobs/{D1}"
    assert m.parse_manifest_url(f"http://h/v2/a/manifests/{D1}").reference == D1
    for bad in [
        "https://h/v2/a/blobs/x",
        "ftp://h/v2/a/manifests/v1",
        "https://h/v2/A/manifests/v1",
        "https://h/v2/a/manifests/-bad",
        "https://h/v2/a/manifests/sha256:12",
    ]:
        with pytest.raises(m.ManifestError):
            m.parse_manifest_url(bad)


@pytest.mark.parametrize(
    ("text", "url"),
    [
        ("nginx", "https://registry-1.docker.io/v2/library/nginx/manifests/latest"),
        ("user/app:1.0", "https://registry-1.docker.io/v2/user/app/manifests/1.0"),
        ("harbor.example.com/lib/app:v1", "https://harbor.example.com/v2/lib/app/manifests/v1"),
        ("127.0.0.1:5000/lib/app:v1", "http://127.0.0.1:5000/v2/lib/app/manifests/v1"),
        ("localhost:5000/app", "http://localhost:5000/v2/app/manifests/latest"),
        (f"r.io/app@{D1}", f"https://r.io/v2/app/manifests/{D1}"),
        ("http://r.io/v2/app/manifests/v1", "http://r.io/v2/app/manifests/v1"),
    ],
)
def test_parse_image_reference(text, url):
    assert m.parse_image_reference(text).manifest_url() == url


def test_insecure_registry_reference_is_http():
    assert m.parse_image_reference("r.io/app:v1", insecure=True).scheme == "http"
    with pytest.raises(m.ManifestError):
        m.parse_image_reference("r.io/App:v1")


def test_parse_manifests():
    schema2 = {
        "schemaVersion": 2,
        "config": {"digest": D1, "size": 3, "mediaType": "c"},
        "layers": [
            {"digest": D2, "size": 5},
            {"digest": D2, "size": 5},
            {
                "digest": D1,
                "mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
            },
        ],
    }
    parsed = m.parse_manifest(m.DOCKER_SCHEMA2, json.dumps(schema2).encode())
    assert [b.digest for b in parsed.blobs] == [D1, D2] and not parsed.is_index
    index = {
        "manifests": [
            {"digest": D1, "platform": {"os": "linux", "architecture": "arm", "variant": "v7"}},
            {"digest": D2, "platform": {"os": "unknown", "architecture": "unknown"}},
        ]
    }
    parsed = m.parse_manifest("", json.dumps(index).encode())
    assert parsed.is_index and [c.platform for c in parsed.children] == [
        "linux/arm/v7",
        "unknown/unknown",
    ]
    assert m.select_children(parsed.children, "all") == parsed.children[:1]
    assert m.select_children(parsed.children, "linux/arm") == parsed.children[:1]
    assert m.select_children(parsed.children, "linux/arm/v6") == ()
    schema1 = {"schemaVersion": 1, "fsLayers": [{"blobSum": D1}, {"blobSum": D2}, {"blobSum": D1}]}
    parsed = m.parse_manifest("application/json", json.dumps(schema1).encode())
    assert [b.digest for b in parsed.blobs] == [D1, D2]
    for bad in [
        b"[]",
        b"{",
        b'{"schemaVersion": 2, "layers": "x"}',
        b'{"layers": [{"digest": "md5:1"}]}',
        b'{"mediaType": "application/vnd.oci.image.manifest.v1+json", "layers": []}',
        b"{}",
    ]:
        with pytest.raises(m.ManifestError):
            m.parse_manifest("", bad)


def test_parse_challenge():
    scheme, params = parse_challenge(
        'Bearer realm="https://a/token",service="reg",scope="repository:x:pull"'
    )
    assert scheme == "bearer" and params == {
        "realm": "https://a/token",
        "service": "reg",
        "scope": "repository:x:pull",
    }
    assert parse_challenge('Basic realm="r"') == ("basic", {"realm": "r"})


def test_host_platform_shape():
    assert m.valid_platform(m.host_platform())
