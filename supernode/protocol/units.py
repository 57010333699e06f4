"""Sizes, rates and durations as the original CLIs and YAML files write them ("20MB", "3m0s")."""

from __future__ import annotations

import re

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")
_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kb": 1024,
    "m": 1024**2,
    "mb": 1024**2,
    "g": 1024**3,
    "gb": 1024**3,
    "t": 1024**4,
    "tb": 1024**4,
}
_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h|d)")
_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}


def parse_size(text: str | int | float) -> int:
    """ "20MB", "20M", "20m", "512k", "1G", "100" → bytes (binary units, as the original)."""
    if isinstance(text, bool):
        raise ValueError(f"invalid size {text!r}")
    if isinstance(text, int | float):
        if text < 0:
            raise ValueError(f"invalid size {text!r}")
        return int(text)
    match = _SIZE_RE.match(text)
    if not match or match.group(2).lower() not in _SIZE_UNITS:
        raise ValueError(f"invalid size {text!r}: use N, NK/KB, NM/MB or NG/GB")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])


def parse_duration(text: str | int | float) -> float:
    """Go durations ("3m", "1h30m", "500ms", "3m0s") and bare numbers (seconds) → seconds."""
    if isinstance(text, bool):
        raise ValueError(f"invalid duration {text!r}")
    if isinstance(text, int | float):
        if text < 0:
            raise ValueError(f"invalid duration {text!r}")
        return float(text)
    stripped = text.strip()
    if re.fullmatch(r"\d+(?:\.\d+)?", stripped):
        return float(stripped)
    if not stripped or _DURATION_RE.sub("", stripped):
        raise ValueError(f"invalid duration {text!r}: use e.g. 30s, 3m, 1h30m")
    return sum(float(n) * _DURATION_UNITS[u] for n, u in _DURATION_RE.findall(stripped))


def format_duration(seconds: float) -> str:
    """Seconds → a Go-style duration string ("3m0s")."""
    whole = int(seconds)
    if whole != seconds:
        return f"{seconds}s"
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"
