"""dfget's configuration: defaults, `/etc/dragonfly/dfget.yml` or `--config`, INI, flags (§13.1)."""

from __future__ import annotations

import configparser
import ipaddress
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from dfget_client.errors import ConfigError
from dfget_client.locator import DEFAULT_NODE, Node, parse_node, parse_nodes
from supernode.protocol.codes import PeerPattern
from supernode.protocol.units import parse_duration, parse_size

DEFAULT_YAML_FILE = Path("/etc/dragonfly/dfget.yml")
DEFAULT_INI_FILE = Path("/etc/dragonfly.conf")
DEFAULT_LOCAL_LIMIT = 20 * 1024 * 1024
DEFAULT_MIN_RATE = 64 * 1024
DEFAULT_CLIENT_QUEUE = 6
DEFAULT_EXPIRE_TIME = 180.0
DEFAULT_ALIVE_TIME = 300.0
_MD5_RE = re.compile(r"^[0-9a-fA-F]{32}$")


def default_home() -> Path:
    return Path(os.path.expanduser("~")) / ".small-dragonfly"


@dataclass(frozen=True, slots=True)
class Properties:
    """What the config file may set; None means "not set there"."""

    nodes: tuple[Node, ...] | None = None
    local_limit: int | None = None
    min_rate: int | None = None
    total_limit: int | None = None
    client_queue: int | None = None
    work_home: Path | None = None


@dataclass(frozen=True, slots=True)
class DfgetConfig:
    """One dfget run; sizes in bytes, rates in bytes/s, durations in seconds."""

    url: str
    output: Path
    nodes: tuple[Node, ...]
    home: Path
    local_limit: int = DEFAULT_LOCAL_LIMIT
    min_rate: int = DEFAULT_MIN_RATE
    total_limit: int = 0
    timeout: float = 0.0
    md5: str = ""
    identifier: str = ""
    callsystem: str = ""
    pattern: PeerPattern = PeerPattern.P2P
    filters: tuple[str, ...] = ()
    headers: tuple[str, ...] = ()
    notbs: bool = False
    dfdaemon: bool = False
    insecure: bool = False
    cacerts: tuple[bytes, ...] = ()
    client_queue: int = DEFAULT_CLIENT_QUEUE
    showbar: bool = False
    console: bool = False
    verbose: bool = False
    ip: str = ""
    port: int = 0
    expire_time: float = DEFAULT_EXPIRE_TIME
    alive_time: float = DEFAULT_ALIVE_TIME

    @property
    def meta_path(self) -> Path:
        return self.home / "meta" / "host.meta"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """`dfget server` (the uploader)."""

    home: Path
    data_dir: Path
    meta_path: Path
    ip: str = "0.0.0.0"
    port: int = 0
    expire_time: float = DEFAULT_EXPIRE_TIME
    alive_time: float = DEFAULT_ALIVE_TIME
    total_limit: int = 0
    verbose: bool = False
    console: bool = False
    gc_interval: float = 15.0


def _key(raw: dict[str, Any], name: str, parse: Any) -> Any:
    if name not in raw or raw[name] in (None, ""):
        return None
    try:
        return parse(raw[name])
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"config key {name}: {exc}") from exc


def _nodes_value(value: Any) -> tuple[Node, ...]:
    items = value if isinstance(value, list) else [value]
    return tuple(parse_nodes(str(item) for item in items))


def _positive_int(value: Any) -> int:
    number = int(value)
    if number <= 0:
        raise ValueError(f"{value!r} must be positive")
    return number


def load_yaml(path: Path) -> Properties:
    """Keys `nodes, localLimit, minRate, totalLimit, clientQueueSize, workHome` (others ignored)."""
    import yaml  # only when a config file exists: it costs start-up time

    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}".splitlines()[0]) from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    return Properties(
        nodes=_key(raw, "nodes", _nodes_value),
        local_limit=_key(raw, "localLimit", parse_size),
        min_rate=_key(raw, "minRate", parse_size),
        total_limit=_key(raw, "totalLimit", parse_size),
        client_queue=_key(raw, "clientQueueSize", _positive_int),
        work_home=_key(raw, "workHome", lambda v: Path(os.path.expanduser(str(v)))),
    )


def load_ini(path: Path) -> Properties:
    """`[node] address=ip1,ip2` of `/etc/dragonfly.conf`."""
    parser = configparser.ConfigParser()
    try:
        parser.read_string(path.read_text(encoding="utf-8"))
    except configparser.Error as exc:
        raise ConfigError(f"{path}: invalid INI file") from exc
    address = parser.get("node", "address", fallback="")
    try:
        nodes = tuple(parse_nodes([address])) if address.strip() else None
    except ValueError as exc:
        raise ConfigError(f"{path}: node address: {exc}") from exc
    return Properties(nodes=nodes)


def load_properties(explicit: Path | None) -> Properties:
    """`--config` must load; otherwise the first default file that exists wins."""
    if explicit is not None:
        if not explicit.is_file():
            raise ConfigError(f"config file {explicit} does not exist")
        return load_ini(explicit) if explicit.suffix in (".conf", ".ini") else load_yaml(explicit)
    for path, loader in ((DEFAULT_YAML_FILE, load_yaml), (DEFAULT_INI_FILE, load_ini)):
        try:
            if path.is_file():
                return loader(path)
        except OSError:
            continue
    return Properties()


def check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or " " in url:
        raise ConfigError(f"invalid url {url!r}: only http:// and https:// URLs are supported")
    return url


def default_output(url: str) -> str:
    """Last path segment of the URL, query string included (as the original)."""
    trimmed = url.rstrip("/")
    name = trimmed[trimmed.rfind("/") + 1 :]
    if not name or "//" not in url or trimmed.endswith(":"):
        raise ConfigError(f"cannot derive an output file name from {url!r}: use -o")
    return name


def check_output(output: str, url: str) -> Path:
    path = Path(os.path.abspath(output or default_output(url)))
    if path.is_dir():
        raise ConfigError(f"output {path} is a directory but a file path is required")
    return path


def check_headers(headers: list[str]) -> tuple[str, ...]:
    for header in headers:
        key, colon, _ = header.partition(":")
        if not colon or not key.strip():
            raise ConfigError(f"invalid header {header!r}: use 'Name: value'")
    return tuple(headers)


def check_md5(md5: str) -> str:
    if md5 and not _MD5_RE.match(md5):
        raise ConfigError(f"invalid md5 {md5!r}: 32 hex digits expected")
    return md5.lower()


def check_ip(ip: str) -> str:
    if ip:
        try:
            ipaddress.IPv4Address(ip)
        except ValueError as exc:
            raise ConfigError(f"invalid --ip {ip!r}: an IPv4 address is required") from exc
    return ip


def check_port(port: int) -> int:
    if port != 0 and not 15000 <= port <= 65000:
        raise ConfigError(f"invalid --port {port}: use 0 (automatic) or 15000..65000")
    return port


def read_cacerts(paths: list[str]) -> tuple[bytes, ...]:
    certs = []
    for item in paths:
        try:
            certs.append(Path(item).read_bytes())
        except OSError as exc:
            raise ConfigError(f"cannot read --cacerts file {item}: {exc.strerror}") from exc
    return tuple(certs)


def parse_rate(flag: str, text: str | None) -> int | None:
    if text is None or text == "":
        return None
    try:
        value = parse_size(text)
    except ValueError as exc:
        raise ConfigError(f"--{flag}: {exc}") from exc
    return value or None


def parse_seconds(flag: str, text: str | None, default: float) -> float:
    if text is None or text == "":
        return default
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise ConfigError(f"--{flag}: {exc}") from exc


def resolve_nodes(flag_nodes: list[str], props: Properties) -> tuple[Node, ...]:
    """`--node` > config file > 127.0.0.1:8002."""
    if flag_nodes:
        try:
            return tuple(parse_nodes(flag_nodes))
        except ValueError as exc:
            raise ConfigError(f"--node: {exc}") from exc
    if props.nodes is not None:
        return props.nodes
    return (parse_node(DEFAULT_NODE),)
