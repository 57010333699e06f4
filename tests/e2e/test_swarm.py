"""Three dfgets, one supernode, one origin, one 64 MiB file (the issue's "done when")."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Files
from tests.e2e.harness import Cluster, free_port, md5_of

pytestmark = pytest.mark.e2e


def test_three_dfgets_share_a_64mib_file(cluster: Cluster, files: Files) -> None:
    origin = cluster.origin(files.dir)
    sn = cluster.supernode()
    url, size = origin.url("f64m"), files.size["f64m"]
    outs = [cluster.root / f"out{i}" for i in range(3)]
    homes = [cluster.root / f"home{i}" for i in range(3)]
    flags = [
        ["--node", sn.node, "--port", str(free_port()), "--verbose", "-s", "1G"] for _ in range(3)
    ]

    first = cluster.dfget(url, outs[0], homes[0], *flags[0])
    assert first.code == 0, first.stdout + first.stderr
    jobs = [(outs[i], homes[i], flags[i]) for i in (1, 2)]
    results = [first, *cluster.dfgets_together(url, jobs, timeout=120)]

    for i, result in enumerate(results):
        assert result.code == 0, result.stdout + result.stderr
        assert result.line.startswith("download SUCCESS") and f"length:{size}" in result.line
        assert md5_of(outs[i]) == files.md5["f64m"]
        print(f"dfget {i}: {result.split()}")
    for result in results[1:]:
        split = result.split()
        assert split["peer"] > split["supernode"], f"most pieces should come from peers: {split}"
        assert split["origin"] == 0
    assert results[0].split()["supernode"] > 0
    stats = origin.stats()
    assert stats["complete"].get("f64m") == 1, stats
    assert stats["bytes"]["f64m"] <= size * 1.01 + 1, stats  # the probe is `bytes=0-0`
    for home, result in zip(homes, results, strict=True):  # each uploader still serves its copy
        served = list((home / "data").glob("out*.service"))
        logs = "\n".join(p.read_text()[-3000:] for p in (home / "logs").glob("*.log"))
        assert served, f"{home}: no .service file\n{result.stdout}{result.stderr}\n{logs}"
        assert (home / "meta" / "host.meta").read_text().startswith('{"servicePort":')
