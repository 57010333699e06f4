"""Supernode configuration: defaults, `/etc/dragonfly/supernode.yml`, SUPERNODE_* env, flags."""

from __future__ import annotations

import dataclasses
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from supernode.protocol.codes import CdnPattern
from supernode.protocol.units import format_duration, parse_duration, parse_size

DEFAULT_CONFIG_FILE = "/etc/dragonfly/supernode.yml"


class ConfigError(ValueError):
    """A configuration value that cannot be used; the message names the key."""


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    """The scheduler cluster this supernode serves (Open API)."""

    id: int = 1
    name: str = "cluster-1"
    is_default: bool = True
    # Open API job creations per second for this cluster (DF2's DefaultClusterJobRateLimit);
    # over it POST /oapi/v1/jobs answers 429. 0 turns the limit off.
    job_rate_limit: float = 10.0


@dataclass(frozen=True, slots=True)
class SupernodeConfig:
    """Every tunable; sizes in bytes, durations in seconds. YAML keys are the `base.` names."""

    listen_ip: str = "0.0.0.0"
    listen_port: int = 8002
    download_port: int = 8001
    home_dir: Path = Path("/home/admin/supernode")
    cdn_pattern: CdnPattern = CdnPattern.LOCAL
    advertise_ip: str = ""
    peer_up_limit: int = 5
    peer_down_limit: int = 4
    elimination_limit: int = 5
    failure_count_limit: int = 5
    max_bandwidth: int = 200 * 1024 * 1024
    system_reserved_bandwidth: int = 20 * 1024 * 1024
    fail_access_interval: float = 180.0
    gc_initial_delay: float = 6.0
    gc_meta_interval: float = 120.0
    task_expire_time: float = 180.0
    peer_gc_delay: float = 180.0
    gc_disk_interval: float = 15.0
    young_gc_threshold: int = 100 * 1024**3
    full_gc_threshold: int = 5 * 1024**3
    interval_threshold: float = 7200.0
    clean_ratio: int = 1
    debug: bool = False
    preheat_deadline: float = 1800.0
    preheat_retention: float = 7 * 86400.0
    max_body_size: int = 1024 * 1024
    cluster: ClusterConfig = field(default_factory=ClusterConfig)

    @property
    def origin_rate_limit(self) -> int:
        """Bytes/s shared by every origin download: maxBandwidth − systemReservedBandwidth."""
        return max(0, self.max_bandwidth - self.system_reserved_bandwidth)

    @property
    def download_root(self) -> Path:
        return self.home_dir / "repo" / "download"

    def effective_advertise_ip(self) -> str:
        return self.advertise_ip or first_non_loopback_ipv4()

    def to_yaml_dict(self) -> dict[str, Any]:
        """The effective configuration in the original's YAML shape (`supernode config`)."""
        base: dict[str, Any] = {}
        for spec in _KEYS:
            value = getattr(self, spec.attr)
            if spec.kind == "duration":
                value = format_duration(value)
            elif isinstance(value, Path):
                value = str(value)
            elif isinstance(value, CdnPattern):
                value = value.value
            base[spec.yaml] = value
        cluster = dataclasses.asdict(self.cluster)
        return {"base": base, "cluster": cluster}


@dataclass(frozen=True, slots=True)
class _Key:
    attr: str
    yaml: str
    flag: str | None
    kind: str  # int, size, duration, str, path, bool, pattern


_KEYS = (
    _Key("listen_ip", "listenIP", "--listen-ip", "str"),
    _Key("listen_port", "listenPort", "--port", "port"),
    _Key("download_port", "downloadPort", "--download-port", "port"),
    _Key("home_dir", "homeDir", "--home-dir", "path"),
    _Key("cdn_pattern", "cdnPattern", "--cdn-pattern", "pattern"),
    _Key("advertise_ip", "advertiseIP", "--advertise-ip", "str"),
    _Key("peer_up_limit", "peerUpLimit", "--up-limit", "int"),
    _Key("peer_down_limit", "peerDownLimit", "--down-limit", "int"),
    _Key("elimination_limit", "eliminationLimit", None, "int"),
    _Key("failure_count_limit", "failureCountLimit", None, "int"),
    _Key("max_bandwidth", "maxBandwidth", "--max-bandwidth", "size"),
    _Key("system_reserved_bandwidth", "systemReservedBandwidth", "--system-bandwidth", "size"),
    _Key("fail_access_interval", "failAccessInterval", "--fail-access-interval", "duration"),
    _Key("gc_initial_delay", "gcInitialDelay", "--gc-initial-delay", "duration"),
    _Key("gc_meta_interval", "gcMetaInterval", "--gc-meta-interval", "duration"),
    _Key("task_expire_time", "taskExpireTime", "--task-expire-time", "duration"),
    _Key("peer_gc_delay", "peerGCDelay", "--peer-gc-delay", "duration"),
    _Key("gc_disk_interval", "gcDiskInterval", "--gc-disk-interval", "duration"),
    _Key("young_gc_threshold", "youngGCThreshold", "--young-gc-threshold", "size"),
    _Key("full_gc_threshold", "fullGCThreshold", "--full-gc-threshold", "size"),
    _Key("interval_threshold", "IntervalThreshold", None, "duration"),
    _Key("clean_ratio", "CleanRatio", None, "int"),
    _Key("debug", "debug", "--debug", "bool"),
    _Key("preheat_deadline", "preheatDeadline", "--preheat-deadline", "duration"),
    _Key("preheat_retention", "preheatRetention", "--preheat-retention", "duration"),
)
KEYS_BY_FLAG = {k.flag: k for k in _KEYS if k.flag}


def _convert(spec: _Key, value: Any) -> Any:
    try:
        if spec.kind == "int":
            number = int(value)
            if number < 0:
                raise ValueError("must not be negative")
            return number
        if spec.kind == "port":
            number = int(value)
            if not 0 <= number <= 65535:
                raise ValueError("must be within 0..65535")
            return number
        if spec.kind == "size":
            return parse_size(value)
        if spec.kind == "duration":
            return parse_duration(value)
        if spec.kind == "path":
            return Path(str(value)).expanduser().absolute()
        if spec.kind == "pattern":
            return CdnPattern(str(value))
        if spec.kind == "bool":
            if isinstance(value, bool):
                return value
            text = str(value).lower()
            if text in {"1", "true", "yes"}:
                return True
            if text in {"0", "false", "no"}:
                return False
            raise ValueError("must be true or false")
        return str(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{spec.yaml}: invalid value {value!r}: {exc}") from exc


def load_config(
    config_file: str | None = None,
    overrides: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
) -> SupernodeConfig:
    """Defaults < YAML file < SUPERNODE_<YAMLKEY> env < explicit overrides (CLI flags by attr)."""
    values: dict[str, Any] = {}
    cluster: dict[str, Any] = {}
    path = config_file or DEFAULT_CONFIG_FILE
    if config_file or os.path.exists(path):
        try:
            with open(path, encoding="utf-8") as handle:
                document = yaml.safe_load(handle) or {}
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc}") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
        if not isinstance(document, dict):
            raise ConfigError(f"config file {path} must hold a mapping")
        base = document.get("base") or {}
        if not isinstance(base, dict):
            raise ConfigError("base: must be a mapping")
        by_yaml = {k.yaml.lower(): k for k in _KEYS}
        for key, value in base.items():
            spec = by_yaml.get(str(key).lower())
            if spec is not None:
                values[spec.attr] = _convert(spec, value)
        raw_cluster = document.get("cluster") or {}
        if not isinstance(raw_cluster, dict):
            raise ConfigError("cluster: must be a mapping")
        cluster = _cluster_values(raw_cluster)
    environ = os.environ if env is None else env
    for spec in _KEYS:
        raw = environ.get(f"SUPERNODE_{spec.yaml.upper()}")
        if raw is not None:
            values[spec.attr] = _convert(spec, raw)
    by_attr = {k.attr: k for k in _KEYS}
    for attr, value in (overrides or {}).items():
        if value is None:
            continue
        if attr in by_attr:
            values[attr] = _convert(by_attr[attr], value)
        elif attr in {"max_body_size"}:
            values[attr] = value
    if cluster:
        values["cluster"] = ClusterConfig(**cluster)
    config = SupernodeConfig(**values)
    if config.peer_down_limit < 1 or config.peer_up_limit < 1:
        raise ConfigError("peerUpLimit and peerDownLimit must be at least 1")
    return config


def _cluster_values(raw: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "id" in raw:
        if not isinstance(raw["id"], int) or raw["id"] < 1:
            raise ConfigError("cluster.id: must be a positive integer")
        out["id"] = raw["id"]
    if "name" in raw:
        out["name"] = str(raw["name"])
    if "is_default" in raw:
        out["is_default"] = bool(raw["is_default"])
    if "job_rate_limit" in raw:
        rate = raw["job_rate_limit"]
        if isinstance(rate, bool) or not isinstance(rate, int | float) or rate < 0:
            raise ConfigError("cluster.job_rate_limit: must be a number of jobs a second >= 0")
        out["job_rate_limit"] = float(rate)
    return out


def first_non_loopback_ipv4() -> str:
    """The address peers should use to reach us; 127.0.0.1 when the host has no other."""
    try:
        for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET):
            address = str(info[4][0])
            if not address.startswith("127."):
                return address
    except OSError:
        pass
    return "127.0.0.1"
