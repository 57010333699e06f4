"""The command line of §13.1: flags, defaults, config files, one-line errors and exit codes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dfget_client import cli
from dfget_client.config import DEFAULT_LOCAL_LIMIT, DEFAULT_MIN_RATE, default_home
from dfget_client.core import Outcome, overall_timeout
from dfget_client.errors import ConfigError, ExitCode
from supernode.protocol.codes import PeerPattern

URL = "http://10.0.0.9/dir/file.tar.gz?sign=x&key=y"


@pytest.fixture(autouse=True)
def no_system_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr("dfget_client.config.DEFAULT_YAML_FILE", tmp_path / "none.yml")
    monkeypatch.setattr("dfget_client.config.DEFAULT_INI_FILE", tmp_path / "none.conf")
    monkeypatch.chdir(tmp_path)


def test_defaults(tmp_path: Path) -> None:
    cfg = cli.parse_args(["-u", URL])
    assert cfg.output == tmp_path / "file.tar.gz?sign=x&key=y"  # last segment, query included
    assert [n.addr for n in cfg.nodes] == ["127.0.0.1:8002"]
    assert cfg.home == default_home() and cfg.home.name == ".small-dragonfly"
    assert (cfg.local_limit, cfg.min_rate, cfg.total_limit) == (
        DEFAULT_LOCAL_LIMIT, DEFAULT_MIN_RATE, 0,
    )  # fmt: skip
    assert cfg.pattern is PeerPattern.P2P and cfg.client_queue == 6
    assert (cfg.expire_time, cfg.alive_time, cfg.timeout) == (180.0, 300.0, 0.0)
    assert cfg.meta_path == cfg.home / "meta" / "host.meta"


def test_every_flag(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_bytes(b"PEM")
    cfg = cli.parse_args(
        ["--url", URL, "-O", "out/x", "-s", "20M", "--minrate", "64k", "--totallimit", "1G",
         "-e", "5m", "-m", "ABCDEF0123456789abcdef0123456789", "--callsystem", "ci",
         "-p", "cdn", "-f", "sign&key", "--header", "A: b", "--header", "C: d, e",
         "-n", "a:1=2,b", "--node", "c", "--notbs", "--dfdaemon", "--insecure",
         "--cacerts", str(ca),
         "--clientqueue", "9", "-b", "--console", "--verbose", "--home", "h", "--ip", "10.0.0.5",
         "--port", "15001", "--expiretime", "30s", "--alivetime", "1m"]
    )  # fmt: skip
    assert cfg.output == tmp_path / "out" / "x"
    assert (cfg.local_limit, cfg.min_rate, cfg.total_limit) == (20 << 20, 64 << 10, 1 << 30)
    assert cfg.timeout == 300.0 and cfg.md5 == "abcdef0123456789abcdef0123456789"
    assert cfg.pattern is PeerPattern.CDN and cfg.filters == ("sign", "key")
    assert cfg.headers == ("A: b", "C: d, e")  # commas inside a header survive
    assert [(n.addr, n.weight) for n in cfg.nodes] == [("a:1", 2), ("b:8002", 1), ("c:8002", 1)]
    assert cfg.notbs and cfg.dfdaemon and cfg.insecure and cfg.cacerts == (b"PEM",)
    assert cfg.client_queue == 9 and cfg.showbar and cfg.console and cfg.verbose
    assert cfg.home == tmp_path / "h" and (cfg.ip, cfg.port) == ("10.0.0.5", 15001)
    assert (cfg.expire_time, cfg.alive_time) == (30.0, 60.0)


def test_md5_wins_over_identifier() -> None:
    cfg = cli.parse_args(["-u", URL, "-m", "a" * 32, "-i", "tag"])
    assert cfg.identifier == ""
    assert cli.parse_args(["-u", URL, "-i", "tag"]).identifier == "tag"


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["-u", "ftp://x/y"],
        ["-u", "http://"],
        ["-u", URL, "-p", "bt"],
        ["-u", URL, "-s", "fast"],
        ["-u", URL, "-e", "soon"],
        ["-u", URL, "-m", "xyz"],
        ["-u", URL, "--header", "novalue"],
        ["-u", URL, "-n", "a:b:c"],
        ["-u", URL, "--ip", "host"],
        ["-u", URL, "--port", "80"],
        ["-u", URL, "--cacerts", "/does/not/exist"],
        ["-u", URL, "--config", "/does/not/exist.yml"],
        ["-u", URL, "--bogus"],
        ["-u", URL, "--clientqueue", "x"],
    ],
)
def test_bad_input_is_a_config_error(argv: list[str]) -> None:
    with pytest.raises(ConfigError):
        cli.parse_args(argv)


def test_output_must_not_be_a_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="directory"):
        cli.parse_args(["-u", URL, "-o", str(tmp_path)])


def test_bad_flags_exit_1_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["-u", URL, "--pattern", "bt"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "invalid pattern" in err and "Traceback" not in err
    assert cli.main(["-u", URL, "--nope"]) == 1


def test_subcommands(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["version"]) == 0
    assert "dfget version" in capsys.readouterr().out
    assert cli.main(["daemon"]) == 2
    assert cli.dfdaemon_main([]) == 2
    assert cli.main([]) == 0
    assert "help" in capsys.readouterr().out


def test_yaml_config(tmp_path: Path) -> None:
    conf = tmp_path / "dfget.yml"
    conf.write_text(
        "nodes:\n  - 10.0.0.1:8003=2\n  - 10.0.0.2\nlocalLimit: 10M\nminRate: 32K\n"
        "totalLimit: 100M\nclientQueueSize: 3\nworkHome: /tmp/wh\nlogConfig: {}\nextra: 1\n"
    )
    cfg = cli.parse_args(["-u", URL, "--config", str(conf)])
    assert [(n.addr, n.weight) for n in cfg.nodes] == [("10.0.0.1:8003", 2), ("10.0.0.2:8002", 1)]
    assert (cfg.local_limit, cfg.min_rate, cfg.total_limit) == (10 << 20, 32 << 10, 100 << 20)
    assert cfg.client_queue == 3 and cfg.home == Path("/tmp/wh")
    flags = cli.parse_args(["-u", URL, "--config", str(conf), "-n", "x", "-s", "1M", "--home", "h"])
    assert [n.addr for n in flags.nodes] == ["x:8002"] and flags.local_limit == 1 << 20
    assert flags.home == tmp_path / "h"  # flags win
    conf.write_text("localLimit: [1]\n")
    with pytest.raises(ConfigError, match="localLimit"):
        cli.parse_args(["-u", URL, "--config", str(conf)])


def test_default_config_files_and_ini(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    ini = tmp_path / "dragonfly.conf"
    ini.write_text("[node]\naddress=10.0.0.3,10.0.0.4:8005\n")
    monkeypatch.setattr("dfget_client.config.DEFAULT_INI_FILE", ini)
    cfg = cli.parse_args(["-u", URL])
    assert [n.addr for n in cfg.nodes] == ["10.0.0.3:8002", "10.0.0.4:8005"]
    yml = tmp_path / "dfget.yml"
    yml.write_text("nodes: 10.0.0.7\n")
    monkeypatch.setattr("dfget_client.config.DEFAULT_YAML_FILE", yml)
    assert [n.addr for n in cli.parse_args(["-u", URL]).nodes] == ["10.0.0.7:8002"]


def test_server_args(tmp_path: Path) -> None:
    cfg = cli.parse_server_args(
        ["--home", "h", "--port", "15001", "--ip", "127.0.0.1", "--expiretime", "3m0s",
         "--alivetime", "5m0s", "--totallimit", "20M", "--verbose"]
    )  # fmt: skip
    assert cfg.data_dir == tmp_path / "h" / "data"
    assert cfg.meta_path == tmp_path / "h" / "meta" / "host.meta"
    assert (cfg.port, cfg.expire_time, cfg.alive_time, cfg.total_limit) == (
        15001, 180.0, 300.0, 20 << 20,
    )  # fmt: skip


def test_result_lines_and_exit_codes() -> None:
    ok = Outcome(ExitCode.SUCCESS, 1.23456, 10, 0)
    assert ok.line() == "download SUCCESS cost:1.235s length:10 reason:0"
    fail = Outcome(ExitCode.DOWNLOAD, 2.0, 0, 1001, "download fail and not back source: 1001")
    assert fail.line() == (
        "download FAIL(1104) cost:2.000s length:0 reason:1001 "
        "error:download fail and not back source: 1001"
    )
    assert [int(c) % 256 for c in (ExitCode.PREPARE, ExitCode.GET_USER, ExitCode.REGISTER,
                                   ExitCode.DOWNLOAD)] == [77, 78, 79, 80]  # fmt: skip


def test_overall_timeout() -> None:
    cfg = cli.parse_args(["-u", URL])
    assert overall_timeout(cfg, -1) == 300.0
    assert overall_timeout(cfg, 64 * 1024 * 100) == 110.0
    assert overall_timeout(cli.parse_args(["-u", URL, "-e", "7s"]), 10**12) == 7.0


def test_home_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_home() == tmp_path / ".small-dragonfly"
    assert os.path.isabs(cli.parse_args(["-u", URL, "-o", "rel"]).output)
