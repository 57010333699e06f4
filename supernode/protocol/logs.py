"""The JSON log line shared by the supernode and dfget: `level, ts, caller, msg` + context.

Operators grep these files ("peer task done") and ship them to log stores, so every line is
one JSON object. Secrets never reach a line: Authorization values, bearer tokens, passwords
and signed query parameters are masked in the message and in every context field.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from pathlib import Path

CONTEXT_FIELDS = ("peer", "task", "component", "cost_ms", "source", "reason")
_SECRET_PATTERNS = (
    # "Authorization: Bearer x", "authorization=Basic x", "Proxy-Authorization: x"
    re.compile(
        r"(?i)((?:proxy-)?authorization\s*[:=]\s*)(?:(?:bearer|basic|token)\s+)?[^\s,;\"'&]+"
    ),
    re.compile(r"(?i)(\bbearer\s+)[A-Za-z0-9._~+/=-]+"),
    # query strings and key=value pairs that carry credentials or signatures
    re.compile(
        r"(?i)(\b(?:access_token|token|password|passwd|secret|sig|signature|x-amz-signature|"
        r"x-amz-credential|x-amz-security-token|auth|key)=)[^&\s\"',;]+"
    ),
    re.compile(r"(?i)(\"(?:password|token|access_token|secret)\"\s*:\s*\")[^\"]*"),
    # user:password@ in URLs
    re.compile(r"(://[^/\s:@]+:)[^@/\s]+(@)"),
)


def redact(text: str) -> str:
    """Mask every secret-looking value in `text`, keeping the name so the line stays useful."""
    for pattern in _SECRET_PATTERNS:
        replacement = r"\1***\2" if pattern.groups == 2 else r"\1***"
        text = pattern.sub(replacement, text)
    return text


class JsonFormatter(logging.Formatter):
    """One JSON object per line: level, ts (RFC 3339, UTC), caller, msg, then context fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "level": record.levelname.lower(),
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "caller": f"{record.filename}:{record.lineno}",
            "msg": redact(record.getMessage()),
        }
        for name in CONTEXT_FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                line[name] = redact(value) if isinstance(value, str) else value
        if record.exc_info:
            line["error"] = redact(self.formatException(record.exc_info))
        return json.dumps(line, ensure_ascii=False, separators=(",", ":"))


def setup_logging(
    log_file: Path | None, *, level: int = logging.INFO, to_stderr: bool = False
) -> None:
    """Route the root logger to `log_file` (created with its folder) and/or stderr, as JSON."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    formatter = JsonFormatter()
    handlers: list[logging.Handler] = []
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
    if to_stderr or log_file is None:
        handlers.append(logging.StreamHandler(sys.stderr))
    for handler in handlers:
        handler.setFormatter(formatter)
        root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
