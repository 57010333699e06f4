"""What one download reports to its host's uploader (`POST /client/stats`), and its check."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from dfget_client.errors import FORCE_NOT_BACK_SOURCE, BackSourceReason

# The body, built by dfget, parsed by the uploader:
#   {"result":"success","bytes":{"supernode":1,"peer":2,"origin":0},
#    "pieces":{"verified":3,"rejected":0},"backsource":false,"reason":0}
# Every value becomes a bounded metric label or a counter increment, so only known keys for
# labels, non-negative integers for counts and defined back-source reasons are accepted;
# unknown top-level keys are ignored (room for additive fields).
MAX_BODY = 4096
SOURCES = ("supernode", "peer", "origin")
PIECE_RESULTS = ("verified", "rejected")
RESULTS = ("success", "fail")
# A reason is a label value: only the defined ones, plain or refused under `--notbs` (+1000).
REASONS = frozenset(
    str(v) for r in BackSourceReason for v in (int(r), int(r) + FORCE_NOT_BACK_SOURCE)
)
_MAX_COUNT = 2**53  # what a JSON number holds exactly; more is a broken client


@dataclass(frozen=True, slots=True)
class ClientStats:
    """One finished download as the uploader counts it."""

    success: bool
    supernode_bytes: int = 0
    peer_bytes: int = 0
    origin_bytes: int = 0
    pieces_verified: int = 0
    pieces_rejected: int = 0
    backsource: bool = False
    reason: int = 0

    @property
    def result(self) -> str:
        return "success" if self.success else "fail"

    def source_bytes(self) -> dict[str, int]:
        return {
            "supernode": self.supernode_bytes,
            "peer": self.peer_bytes,
            "origin": self.origin_bytes,
        }

    def to_body(self) -> dict[str, Any]:
        return {
            "result": self.result,
            "bytes": self.source_bytes(),
            "pieces": {"verified": self.pieces_verified, "rejected": self.pieces_rejected},
            "backsource": self.backsource,
            "reason": self.reason,
        }


def _count(value: Any, where: str) -> int:
    # bool is an int in Python; `true` is not a count
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < _MAX_COUNT:
        raise ValueError(f"{where} must be a non-negative integer")
    return value


def _counts(obj: Any, keys: tuple[str, ...], where: str) -> dict[str, int]:
    if obj is None:
        return dict.fromkeys(keys, 0)
    if not isinstance(obj, dict):
        raise ValueError(f"{where} must be an object")
    unknown = set(obj) - set(keys)
    if unknown:
        raise ValueError(f"{where}: unknown key {sorted(unknown)[0]!r}")
    return {key: _count(obj.get(key, 0), f"{where}.{key}") for key in keys}


def parse_client_stats(raw: bytes) -> ClientStats:
    """The body of `POST /client/stats` → ClientStats; ValueError says what is wrong."""
    if len(raw) > MAX_BODY:
        raise ValueError(f"body larger than {MAX_BODY} bytes")
    try:
        obj = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError("body is not JSON") from exc
    if not isinstance(obj, dict):
        raise ValueError("body must be a JSON object")
    result = obj.get("result")
    if result not in RESULTS:
        raise ValueError('result must be "success" or "fail"')
    sizes = _counts(obj.get("bytes"), SOURCES, "bytes")
    pieces = _counts(obj.get("pieces"), PIECE_RESULTS, "pieces")
    backsource = obj.get("backsource", False)
    if not isinstance(backsource, bool):
        raise ValueError("backsource must be true or false")
    reason = obj.get("reason", 0)
    if isinstance(reason, bool) or not isinstance(reason, int) or str(reason) not in REASONS:
        raise ValueError(f"reason must be a back-source reason, not {reason!r}")
    return ClientStats(
        success=result == "success",
        supernode_bytes=sizes["supernode"],
        peer_bytes=sizes["peer"],
        origin_bytes=sizes["origin"],
        pieces_verified=pieces["verified"],
        pieces_rejected=pieces["rejected"],
        backsource=backsource,
        reason=reason,
    )
