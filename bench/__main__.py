"""`make bench`: run every benchmark and print each one's JSON report."""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = ["bench.peer_task", "bench.cdn_fill", "bench.dfget_swarm", "bench.dfget_vs_curl"]


def main() -> int:
    names = sys.argv[1:] or BENCHMARKS
    for name in names:
        module = importlib.import_module(name)
        print(f"== {name}", flush=True)
        sys.argv = [name]  # each benchmark reads its own sizes from the environment
        module.main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
