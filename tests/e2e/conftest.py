"""Fixtures for end-to-end tests: generated files, and a cluster that stops what it started."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.harness import Cluster, make_file

MIB = 1024 * 1024


@dataclass(frozen=True)
class Files:
    dir: Path
    md5: dict[str, str]
    size: dict[str, int]


@pytest.fixture(scope="session")
def files(tmp_path_factory: pytest.TempPathFactory) -> Files:
    root = tmp_path_factory.mktemp("www")
    sizes = {"f64m": 64 * MIB, "f32m": 32 * MIB + 12345, "small": 1000}
    md5 = {
        name: make_file(root / name, size, seed=i) for i, (name, size) in enumerate(sizes.items())
    }
    return Files(root, md5, sizes)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    group = Cluster(tmp_path)
    try:
        yield group
    finally:
        group.close()
