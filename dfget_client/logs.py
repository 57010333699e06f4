"""JSON log lines of dfget and its uploader, with `peer`, `task` and `component` on every line."""

from __future__ import annotations

import logging
from pathlib import Path

from supernode.protocol.logs import setup_logging

# Format and secret masking are `supernode.protocol.logs`; a filter on each handler adds the
# run's context: `peer` (the cid), `task` (the task id), `component` ("dfget" / "uploader"),
# unless the call passed its own through `extra`.
COMPONENT_DFGET = "dfget"
COMPONENT_UPLOADER = "uploader"
_CONTEXT: dict[str, str] = {}


class ContextFilter(logging.Filter):
    """Adds the bound context fields a record does not carry yet."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in _CONTEXT.items():
            if value and record.__dict__.get(name) is None:
                setattr(record, name, value)
        return True


def bind(**fields: str) -> None:
    """Set context fields for every later line (e.g. `bind(peer=cid, task=task_id)`)."""
    _CONTEXT.update(fields)


def setup(log_file: Path, *, component: str, verbose: bool = False, console: bool = False) -> None:
    """JSON lines to `log_file` (and stderr with `--console`); a read-only home only loses logs."""
    _CONTEXT.clear()
    _CONTEXT["component"] = component
    level = logging.DEBUG if verbose else logging.INFO
    root = logging.getLogger()
    try:
        setup_logging(log_file, level=level, to_stderr=console)
    except OSError:  # a read-only home must not stop the download: stderr or nothing
        setup_logging(None, level=level, to_stderr=True)
        if not console:
            for handler in list(root.handlers):
                root.removeHandler(handler)
            root.addHandler(logging.NullHandler())  # else `lastResort` prints to stderr
    for handler in root.handlers:
        handler.addFilter(ContextFilter())
    # aiohttp's own chatter (client and server) is not what an operator greps for
    logging.getLogger("aiohttp").setLevel(logging.WARNING)
