"""Task ids, URL filtering, client ids and peer ids, byte-for-byte as the original (§8)."""

from __future__ import annotations

import hashlib
import re

# The fixed salt of `task/manager.go` (`key`); it contains a backtick and a double quote.
TASK_ID_KEY = ">I$pg-~AS~sP'rqu_`Oh&lz#9]\"=;nE%"
SUPERNODE_CID_PREFIX = "cdnnode:"
TASK_ID_RE = re.compile(r"^[0-9a-f]{64}$")


def task_id(
    task_url: str, *, md5: str = "", identifier: str = "", range_header: str | None = None
) -> str:
    """sha256(K + taskURL + sign + [Range] + K); sign is md5, else identifier, else empty."""
    sign = md5 or identifier
    text = TASK_ID_KEY + task_url + sign + (range_header or "") + TASK_ID_KEY
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def is_task_id(value: str) -> bool:
    return bool(TASK_ID_RE.match(value))


def split_filter(filter_text: str) -> list[str]:
    """`-f 'a&b'` → ["a", "b"] (empty items dropped)."""
    return [item for item in filter_text.split("&") if item]


def filter_url(url: str, filters: list[str] | tuple[str, ...]) -> str:
    """Drop query items whose key is in `filters`, keeping the rest in order and encoding."""
    if not filters:
        return url
    base, sep, query = url.partition("?")
    if not sep or not query.strip():
        return url
    drop = set(filters)
    kept = [item for item in query.split("&") if item.partition("=")[0] not in drop]
    if not kept:
        return base
    return base + "?" + "&".join(kept)


def client_id(local_ip: str, sign: str) -> str:
    """dfget's CID: `<LocalIP>-<pid>-<unix seconds, 3 decimals>` (sign is the last two parts)."""
    return f"{local_ip}-{sign}"


def client_sign(pid: int, unix_seconds: float) -> str:
    return f"{pid}-{unix_seconds:.3f}"


def task_file_name(output_basename: str, sign: str) -> str:
    return f"{output_basename}-{sign}"


def peer_id(host_name: str, ip: str, unix_nanos: int) -> str:
    return f"{host_name}-{ip}-{unix_nanos}"


def supernode_cid(advertise_ip: str, task: str) -> str:
    return f"{SUPERNODE_CID_PREFIX}{advertise_ip}~{task}"


def is_supernode_cid(cid: str) -> bool:
    return cid.startswith(SUPERNODE_CID_PREFIX)


def dfget_task_key(cid: str, task: str) -> str:
    return f"{cid}@{task}"


def cdn_path(task: str) -> str:
    """Path of a task's data file on the download port: `/download/<id[:3]>/<id>`."""
    return f"/download/{task[:3]}/{task}"
