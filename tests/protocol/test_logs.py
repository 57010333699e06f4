"""JSON log lines and secret masking."""

from __future__ import annotations

import json
import logging

import pytest

from supernode.protocol.logs import JsonFormatter, redact, setup_logging

SECRETS = [
    ("Authorization: Bearer abc.def.ghi", "abc.def.ghi"),
    ('headers=["Authorization: Basic dXNlcjpwYXNz"]', "dXNlcjpwYXNz"),
    ("GET http://h/x?sig=s3cr3t&e=1", "s3cr3t"),
    ("url https://b.s3/x?X-Amz-Signature=deadbeef&X-Amz-Credential=AKIA", "deadbeef"),
    ("https://user:hunter2@registry/v2/", "hunter2"),
    ('{"password":"hunter2"}', "hunter2"),
    ("/oapi/v1/jobs?access_token=tok_123", "tok_123"),
    ("token exchange got Bearer eyJhbGciOi.payload.sig", "eyJhbGciOi"),
]


@pytest.mark.parametrize(("text", "secret"), SECRETS)
def test_secrets_are_masked(text, secret):
    masked = redact(text)
    assert secret not in masked and "***" in masked


def test_plain_text_is_untouched():
    text = "register peer task, pattern: p2p url http://h/file.bin?x=1"
    assert redact(text) == text


def test_lines_are_json_with_context(tmp_path):
    log_file = tmp_path / "logs" / "app.log"
    setup_logging(log_file)
    try:
        logging.getLogger("t").info(
            "peer task done, cost: %dms",
            12,
            extra={"peer": "127.0.0.1-1-1.000", "task": "ab" * 32, "component": "supernode"},
        )
        logging.getLogger("t").warning("fetch failed: Authorization: Bearer zzz")
    finally:
        setup_logging(None)
    lines = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert lines[0]["msg"] == "peer task done, cost: 12ms"
    assert lines[0]["peer"] == "127.0.0.1-1-1.000" and lines[0]["component"] == "supernode"
    assert lines[0]["level"] == "info" and lines[0]["ts"].endswith("Z")
    assert lines[0]["caller"].startswith("test_logs.py:")
    assert "zzz" not in lines[1]["msg"] and lines[1]["level"] == "warning"


def test_exceptions_are_one_line_and_masked():
    record = logging.LogRecord("t", logging.ERROR, __file__, 1, "boom", None, None)
    try:
        raise ValueError("Authorization: Bearer leaked")
    except ValueError:
        import sys

        record.exc_info = sys.exc_info()
    line = JsonFormatter().format(record)
    assert "\n" not in line and "leaked" not in line
