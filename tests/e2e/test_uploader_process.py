"""The uploader as a process: spawned by the first p2p dfget, shared by the next ones on the
host (same home), announcing its port in `host.meta`, and exiting when idle (§6.5)."""

from __future__ import annotations

import json
import signal
import time

import pytest

from tests.e2e.conftest import Files
from tests.e2e.harness import Cluster, free_port, md5_of

pytestmark = pytest.mark.e2e


def test_one_uploader_per_home_shared_by_later_dfgets(cluster: Cluster, files: Files) -> None:
    origin = cluster.origin(files.dir)
    sn = cluster.supernode()
    home, port = cluster.root / "home", free_port()
    url = origin.url("small")
    first = cluster.dfget(url, cluster.root / "a", home, "--node", sn.node, "--port", str(port))
    assert first.code == 0, first.stdout + first.stderr
    meta = json.loads((home / "meta" / "host.meta").read_text())
    assert meta == {"servicePort": port}
    pid = cluster.uploader_pid(home)
    assert pid is not None
    second = cluster.dfget(url, cluster.root / "b", home, "--node", sn.node,
                           "--port", str(free_port()))  # fmt: skip
    assert second.code == 0, second.stdout + second.stderr
    assert cluster.uploader_pid(home) == pid  # reused, not a second uploader
    assert md5_of(cluster.root / "b") == files.md5["small"]
    served = sorted(p.name for p in (home / "data").iterdir())
    assert len(served) == 2 and all(n.endswith(".service") for n in served)


def test_uploader_stops_on_sigterm_and_when_idle(cluster: Cluster) -> None:
    home, port = cluster.root / "idle", free_port()
    meta = home / "meta" / "host.meta"
    proc = cluster.start_uploader(home, port)
    assert json.loads(meta.read_text()) == {"servicePort": port}
    assert cluster.kill_uploader(home, signal.SIGTERM)
    assert proc.wait(10) == 0
    assert json.loads(meta.read_text()) == {"servicePort": 0}
    (home / "data" / "left.service").write_bytes(b"x")
    started = time.monotonic()
    idle = cluster.start_uploader(home, port, alive="1s")
    assert idle.wait(15) == 0  # no request for 1 s: it stops by itself
    assert time.monotonic() - started < 15
    assert json.loads(meta.read_text()) == {"servicePort": 0}
    assert not (home / "meta" / "uploader.pid").exists()
    assert (home / "data" / "left.service").exists()  # unknown files wait for their expiry
