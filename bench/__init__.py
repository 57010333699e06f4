"""Benchmarks: each reports its figures as ratios against a baseline measured in the same run."""

from __future__ import annotations

import json
from pathlib import Path


def emit(report: dict[str, object], path: Path | None) -> None:
    """Print the report as JSON, and write it to `path` when one was given (`--json`)."""
    text = json.dumps(report, indent=1)
    if path is not None:
        path.write_text(text)
    print(text)
