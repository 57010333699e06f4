"""dfget's and the uploader's JSON log lines: context fields on every line, secrets masked."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from dfget_client import logs


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_every_line_carries_the_bound_context(tmp_path: Path) -> None:
    log_file = tmp_path / "logs" / "dfclient.log"
    logs.setup(log_file, component=logs.COMPONENT_DFGET)
    log = logging.getLogger("dfget")
    log.info("before registration")
    logs.bind(peer="127.0.0.1-7-1.000", task="ab" * 32)
    log.debug("not at info level")
    log.warning("GET http://h/f?sig=s3cr3t with Authorization: Bearer s3cr3t failed")
    log.info("peer task done, cost: %dms", 5, extra={"task": "cd" * 32, "cost_ms": 5})
    first, warning, done = lines(log_file)
    assert first["component"] == "dfget" and "peer" not in first and "task" not in first
    assert warning["peer"] == "127.0.0.1-7-1.000" and warning["task"] == "ab" * 32
    assert "s3cr3t" not in json.dumps(warning) and warning["level"] == "warning"
    assert done["msg"] == "peer task done, cost: 5ms" and done["task"] == "cd" * 32
    assert set(done) >= {"level", "ts", "caller", "msg", "peer", "task", "component"}


def test_a_new_setup_forgets_the_old_context(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    logs.setup(tmp_path / "a.log", component=logs.COMPONENT_DFGET)
    logs.bind(peer="old")
    logs.setup(tmp_path / "b.log", component=logs.COMPONENT_UPLOADER, verbose=True, console=True)
    logging.getLogger("dfget.server").debug("serving")
    (line,) = lines(tmp_path / "b.log")
    assert line == {**line, "component": "uploader", "level": "debug"} and "peer" not in line
    assert json.loads(capsys.readouterr().err)["msg"] == "serving"


def test_an_unwritable_home_loses_logs_quietly(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "logs").write_text("a file where the folder should be")
    logs.setup(tmp_path / "logs" / "dfclient.log", component=logs.COMPONENT_DFGET)
    logging.getLogger("dfget").error("nowhere to go")
    assert capsys.readouterr().err == ""
    logs.setup(tmp_path / "logs" / "dfclient.log", component=logs.COMPONENT_DFGET, console=True)
    logging.getLogger("dfget").error("to the console")
    assert json.loads(capsys.readouterr().err)["msg"] == "to the console"
