"""Free TCP ports on 127.0.0.1 for the processes tests and benchmarks start (no aiohttp here:
benchmarks import this, and a light parent keeps children's figures clean)."""

from __future__ import annotations

import random
import socket
from pathlib import Path


def _below_ephemeral() -> int:
    """The highest port below the kernel's ephemeral range: a port chosen there cannot be
    taken meanwhile as the local end of some outgoing connection."""
    try:
        first = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        first = 32768
    return max(20001, first - 1)


def free_port() -> int:
    """A free TCP port on 127.0.0.1 between 20000 and the ephemeral range (uploaders accept
    15000..65000); bind(0) would hand out an ephemeral port that a client may take first."""
    for _ in range(200):
        port = random.randint(20000, _below_ephemeral())
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port")
