"""Marshmallow schemas and envelopes of the wire: case-insensitive keys, unknown keys ignored.

The Go server decodes JSON with case-insensitive key matching and ignores unknown keys; dfget
sends `rawUrl`, `cid`, `ip` where the supernode's struct says `rawURL`, `cID`, `IP`. Every
request schema here accepts any spelling of a key's case. Replies are built by the small
functions at the end so that field names and order are exactly the reference's.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from typing import Any

from marshmallow import (
    EXCLUDE,
    Schema,
    ValidationError,
    fields,
    post_load,
    pre_load,
    validate,
    validates,
)

MAX_HEADERS = 64
MAX_URL_LENGTH = 8192


def dumps(obj: Any) -> bytes:
    """JSON as Go's `json.Encoder` (HTML escaping off) writes it: compact, trailing newline."""
    return (json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


class WireSchema(Schema):
    """Base: keys match case-insensitively, unknown keys are dropped, the body must be an object."""

    class Meta:
        unknown = EXCLUDE

    @pre_load
    def _fold_key_case(self, data: Any, **_: Any) -> Any:
        if not isinstance(data, Mapping):
            raise ValidationError("request body must be a JSON object")
        canonical = {
            (field.data_key or name).lower(): field.data_key or name
            for name, field in self.load_fields.items()
        }
        folded: dict[str, Any] = {}
        for key, value in data.items():
            name = canonical.get(str(key).lower())
            if name is not None and name not in folded:
                folded[name] = value
        return folded


def _ipv4(value: str) -> None:
    try:
        ipaddress.IPv4Address(value)
    except ValueError as exc:
        raise ValidationError(f"{value!r} is not an IPv4 address") from exc


def _peer_port(value: int) -> None:
    if value != 0 and not 15000 <= value <= 65000:
        raise ValidationError("port must be 0 or within 15000..65000")


_Str = fields.String
_bounded_url = validate.Length(max=MAX_URL_LENGTH)


class RegisterRequestSchema(WireSchema):
    """`POST /peer/registry` (§3.1)."""

    super_node_ip = _Str(data_key="superNodeIp", load_default="", validate=validate.Length(max=255))
    raw_url = _Str(
        data_key="rawURL", required=True, validate=validate.Length(min=1, max=MAX_URL_LENGTH)
    )
    task_url = _Str(data_key="taskURL", load_default="", validate=_bounded_url)
    cid = _Str(data_key="cID", required=True, validate=validate.Length(min=1, max=512))
    ip = _Str(data_key="IP", required=True)
    host_name = _Str(data_key="hostName", load_default="", validate=validate.Length(max=255))
    port = fields.Integer(data_key="port", load_default=0, strict=True, validate=_peer_port)
    path = _Str(data_key="path", required=True, validate=validate.Length(min=1, max=4096))
    version = _Str(data_key="version", load_default="", validate=validate.Length(max=64))
    md5 = _Str(data_key="md5", load_default="", validate=validate.Length(max=64))
    identifier = _Str(data_key="identifier", load_default="", validate=validate.Length(max=1024))
    call_system = _Str(data_key="callSystem", load_default="", validate=validate.Length(max=128))
    headers = fields.List(
        _Str(validate=validate.Length(max=MAX_URL_LENGTH)),
        data_key="headers",
        load_default=list,
        allow_none=True,
        validate=validate.Length(max=MAX_HEADERS),
    )
    dfdaemon = fields.Boolean(data_key="dfdaemon", load_default=False, truthy={True}, falsy={False})
    insecure = fields.Boolean(data_key="insecure", load_default=False, truthy={True}, falsy={False})
    root_cas = fields.List(
        _Str(),
        data_key="rootCAs",
        load_default=list,
        allow_none=True,
        validate=validate.Length(max=16),
    )
    pattern = _Str(data_key="pattern", load_default="p2p")
    filter = fields.List(_Str(), data_key="filter", load_default=list, allow_none=True)

    @validates("ip")
    def _check_ip(self, value: str, **_: Any) -> None:
        _ipv4(value)

    @validates("host_name")
    def _check_host(self, value: str, **_: Any) -> None:
        if "\x00" in value:
            raise ValidationError("hostName must not contain NUL")


class PullQuerySchema(WireSchema):
    """`GET /peer/task` query (§3.2); values are checked by the scheduler to answer 501."""

    src_cid = _Str(data_key="srcCid", load_default="")
    dst_cid = _Str(data_key="dstCid", load_default="")
    range = _Str(data_key="range", load_default="")
    result = _Str(data_key="result", load_default="")
    status = _Str(data_key="status", load_default="")
    task_id = _Str(data_key="taskId", load_default="")


class PieceSucQuerySchema(WireSchema):
    """`GET /peer/piece/suc` (§3.3)."""

    task_id = _Str(data_key="taskId", load_default="")
    cid = _Str(data_key="cid", load_default="")
    dst_cid = _Str(data_key="dstCid", load_default="")
    piece_range = _Str(data_key="pieceRange", load_default="")


class PieceErrorQuerySchema(WireSchema):
    """`GET /peer/piece/error` (§3.4) and the body of the v1 piece-error route."""

    error_type = _Str(data_key="errorType", load_default="")
    src_cid = _Str(data_key="srcCid", load_default="")
    dst_cid = _Str(data_key="dstCid", load_default="")
    dst_ip = _Str(data_key="dstIp", load_default="")
    task_id = _Str(data_key="taskId", load_default="")
    range = _Str(data_key="range", load_default="")
    real_md5 = _Str(data_key="realMd5", load_default="")
    expected_md5 = _Str(data_key="expectedMd5", load_default="")


class ServiceDownQuerySchema(WireSchema):
    """`GET /peer/service/down` (§3.5)."""

    task_id = _Str(data_key="taskId", load_default="")
    cid = _Str(data_key="cid", load_default="")


class TaskMetricsSchema(WireSchema):
    """`POST /task/metrics` (§3.6)."""

    ip = _Str(data_key="IP", load_default="", validate=validate.Length(max=64))
    backsource_reason = _Str(
        data_key="backsourceReason", load_default="", validate=validate.Length(max=16)
    )
    cid = _Str(data_key="cID", load_default="", validate=validate.Length(max=512))
    call_system = _Str(data_key="callSystem", load_default="", validate=validate.Length(max=128))
    duration = fields.Float(data_key="duration", load_default=0.0, validate=validate.Range(min=0))
    file_length = fields.Integer(data_key="fileLength", load_default=0, strict=True)
    port = fields.Integer(data_key="port", load_default=0, strict=True, validate=_peer_port)
    success = fields.Boolean(data_key="success", load_default=False, truthy={True}, falsy={False})
    task_id = _Str(data_key="taskId", load_default="", validate=validate.Length(max=64))


class PeerCreateSchema(WireSchema):
    """`POST /api/v1/peers` (PeerCreateRequest)."""

    ip = _Str(data_key="IP", required=True)
    host_name = _Str(data_key="hostName", required=True, validate=validate.Length(min=1, max=255))
    port = fields.Integer(data_key="port", load_default=0, strict=True, validate=_peer_port)
    version = _Str(data_key="version", load_default="", validate=validate.Length(max=64))

    @validates("ip")
    def _check_ip(self, value: str, **_: Any) -> None:
        _ipv4(value)


class PeerListQuerySchema(WireSchema):
    """`GET /api/v1/peers` paging and sorting."""

    page_num = fields.Integer(data_key="pageNum", load_default=0, validate=validate.Range(min=0))
    page_size = fields.Integer(
        data_key="pageSize", load_default=0, validate=validate.Range(min=0, max=100000)
    )
    sort_direct = _Str(
        data_key="sortDirect", load_default="ASC", validate=validate.OneOf(["ASC", "DESC"])
    )
    sort_key = fields.List(
        _Str(validate=validate.OneOf(["ID", "IP", "created", "hostName", "port", "version"])),
        data_key="sortKey",
        load_default=list,
    )


class TaskCreateSchema(WireSchema):
    """`POST /api/v1/tasks` (TaskCreateRequest, documented but never routed by the Go supernode)."""

    cid = _Str(data_key="cID", load_default="", validate=validate.Length(max=512))
    call_system = _Str(data_key="callSystem", load_default="", validate=validate.Length(max=128))
    dfdaemon = fields.Boolean(data_key="dfdaemon", load_default=False, truthy={True}, falsy={False})
    filter = fields.List(
        _Str(), data_key="filter", load_default=list, validate=validate.Length(max=64)
    )
    headers = fields.Dict(
        keys=_Str(validate=validate.Length(min=1, max=256)),
        values=_Str(validate=_bounded_url),
        data_key="headers",
        load_default=dict,
    )
    identifier = _Str(data_key="identifier", load_default="", validate=validate.Length(max=1024))
    md5 = _Str(data_key="md5", load_default="", validate=validate.Length(max=64))
    path = _Str(data_key="path", load_default="", validate=validate.Length(max=4096))
    peer_id = _Str(data_key="peerID", required=True, validate=validate.Length(min=1, max=512))
    raw_url = _Str(
        data_key="rawURL", required=True, validate=validate.Length(min=1, max=MAX_URL_LENGTH)
    )
    super_node_ip = _Str(data_key="supernodeIP", load_default="", validate=validate.Length(max=255))
    task_url = _Str(data_key="taskURL", load_default="", validate=_bounded_url)


class TaskUpdateSchema(WireSchema):
    """`PUT /api/v1/tasks/{id}` (TaskUpdateRequest: `peerID` has finished the whole task)."""

    peer_id = _Str(data_key="peerID", load_default="")


class PiecePullSchema(WireSchema):
    """Body of `GET /api/v1/tasks/{id}/pieces` (PiecePullRequest)."""

    dfget_task_status = _Str(
        data_key="dfgetTaskStatus",
        load_default="STARTED",
        validate=validate.OneOf(["STARTED", "RUNNING", "FINISHED"]),
    )
    dst_pid = _Str(data_key="dstPID", load_default="")
    piece_range = _Str(data_key="pieceRange", load_default="")
    piece_result = _Str(
        data_key="pieceResult",
        load_default="INVALID",
        validate=validate.OneOf(["FAILED", "SUCCESS", "INVALID", "SEMISUC"]),
    )


class PieceUpdateSchema(WireSchema):
    """Body of `PUT /api/v1/tasks/{id}/pieces/{range}` (PieceUpdateRequest)."""

    client_id = _Str(data_key="clientID", required=True, validate=validate.Length(min=1, max=512))
    dst_pid = _Str(data_key="dstPID", load_default="")
    piece_status = _Str(
        data_key="pieceStatus",
        required=True,
        validate=validate.OneOf(["FAILED", "SUCCESS", "INVALID", "SEMISUC"]),
    )


class FlatStringQuery:
    """The hot-path loader of a query whose fields are all optional strings.

    Built from the schema (one definition of the fields); does what the schema's load does
    for such input — case-insensitive keys, unknown keys dropped, defaults — without
    marshmallow's per-field machinery, which costs more than the scheduling itself."""

    def __init__(self, schema: Schema) -> None:
        self._names: dict[str, str] = {}
        self._defaults: dict[str, str] = {}
        for name, field in schema.load_fields.items():
            if not isinstance(field, fields.String) or field.required:
                raise TypeError(f"{name}: FlatStringQuery takes optional string fields only")
            self._names[(field.data_key or name).lower()] = name
            default = field.load_default
            self._defaults[name] = default if isinstance(default, str) else ""

    def load(self, query: Mapping[str, str]) -> dict[str, str]:
        out = dict(self._defaults)
        seen: set[str] = set()
        for key, value in query.items():
            name = self._names.get(key.lower())
            if name is not None and name not in seen:
                seen.add(name)
                out[name] = value
        return out


REGISTER_REQUEST = RegisterRequestSchema()
PULL_QUERY = FlatStringQuery(PullQuerySchema())
PIECE_SUC_QUERY = FlatStringQuery(PieceSucQuerySchema())
PIECE_ERROR_QUERY = PieceErrorQuerySchema()
SERVICE_DOWN_QUERY = FlatStringQuery(ServiceDownQuerySchema())
PIECE_ERROR_FLAT = FlatStringQuery(PieceErrorQuerySchema())
TASK_METRICS = TaskMetricsSchema()
PEER_CREATE = PeerCreateSchema()
PEER_LIST_QUERY = PeerListQuerySchema()
TASK_CREATE = TaskCreateSchema()
TASK_UPDATE = TaskUpdateSchema()
PIECE_PULL = PiecePullSchema()
PIECE_UPDATE = PieceUpdateSchema()


def first_error(exc: ValidationError) -> str:
    """One readable line out of marshmallow's nested messages."""
    messages = exc.messages
    if isinstance(messages, dict):
        parts = []
        for key, value in messages.items():
            text = value[0] if isinstance(value, list) and value else value
            parts.append(f"{key}: {text}")
        return "; ".join(str(p) for p in parts)
    if isinstance(messages, list) and messages:
        return str(messages[0])
    return str(messages)


# ---- replies -------------------------------------------------------------------------------


def result_info(code: int, data: Any = None, msg: str = "") -> dict[str, Any]:
    """ResultInfo `{code, data, msg}` with Go's omitempty: zero code, nil data, empty msg vanish."""
    out: dict[str, Any] = {}
    if code:
        out["code"] = code
    if data is not None:
        out["data"] = data
    if msg:
        out["msg"] = msg
    return out


def error_response(code: int, message: str) -> dict[str, Any]:
    return {"code": code, "message": message}


def register_data(
    task_id: str, file_length: int, piece_size: int, cdn_source: str
) -> dict[str, Any]:
    return {
        "taskId": task_id,
        "fileLength": file_length,
        "pieceSize": piece_size,
        "cdnSource": cdn_source,
        "asSeed": False,
        "seedTaskID": "",
    }


def piece_item(
    *,
    range_: str,
    piece_num: int,
    piece_size: int,
    piece_md5: str,
    cid: str,
    peer_ip: str,
    peer_port: int,
    path: str,
) -> dict[str, Any]:
    """One element of a 601 `data` list, in the Go field order (§5.2)."""
    return {
        "range": range_,
        "pieceNum": piece_num,
        "pieceSize": piece_size,
        "pieceMd5": piece_md5,
        "cid": cid,
        "peerIp": peer_ip,
        "peerPort": peer_port,
        "path": path,
        "downLink": 0,
    }


def finish_data(file_length: int, md5: str) -> dict[str, Any]:
    """600 `data`: Go marshals a map, so keys come sorted."""
    return {"fileLength": file_length, "md5": md5}


# ---- preheat -------------------------------------------------------------------------------
# Request schemas of the preheat APIs (F1 `/preheats`, F0 `/api/preheat`); replies are built
# by `supernode/preheat/app.py`. Harbor's extra keys (`image`, `tag`) are ignored.

PREHEAT_TYPES = ("image", "file")
MAX_PREHEAT_HEADERS = 64
_HEADER_NAME_CHARS = frozenset(
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)
_PLATFORM_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_/")


def _preheat_url(value: str) -> None:
    from urllib.parse import urlsplit

    if any(c.isspace() or ord(c) < 0x20 or c == "\x7f" for c in value):
        raise ValidationError("url must not contain whitespace or control characters")
    try:
        parts = urlsplit(value)
        host = parts.hostname
        _ = parts.port  # a non-numeric port raises here
    except ValueError as exc:
        raise ValidationError(f"malformed url: {exc}") from exc
    if parts.scheme not in ("http", "https") or not host:
        raise ValidationError("url must be an http:// or https:// URL with a host")


def preheat_url_problem(value: str) -> str:
    """Why `value` cannot be a preheat file URL, or "" (F0 checks its URLs after the type)."""
    try:
        _preheat_url(value)
    except ValidationError as exc:
        return first_error(exc)
    return ""


def _preheat_headers(value: Mapping[str, str]) -> None:
    if len(value) > MAX_PREHEAT_HEADERS:
        raise ValidationError(f"at most {MAX_PREHEAT_HEADERS} headers")
    for name, text in value.items():
        if not name or not set(name) <= _HEADER_NAME_CHARS:
            raise ValidationError(f"invalid header name {name!r}")
        if any(c in text for c in "\r\n\x00"):
            raise ValidationError(f"header {name} holds a line break or NUL")


def _preheat_platform(value: str) -> None:
    parts = value.split("/")
    if value in ("", "all"):
        return
    if not set(value) <= _PLATFORM_CHARS or not 2 <= len(parts) <= 3 or not all(parts):
        raise ValidationError("platform must be os/arch[/variant] (e.g. linux/amd64) or all")


def _preheat_header_field(data_key: str) -> fields.Dict:
    return fields.Dict(
        keys=_Str(validate=validate.Length(min=1, max=256)),
        values=_Str(validate=_bounded_url),
        data_key=data_key,
        load_default=dict,
        allow_none=True,
        validate=_preheat_headers,
    )


class _PreheatOptions(WireSchema):
    """Additive options of both APIs: platform choice and registry credentials / TLS."""

    platform = _Str(data_key="platform", load_default="", validate=_preheat_platform)
    username = _Str(data_key="username", load_default="", validate=validate.Length(max=256))
    password = _Str(data_key="password", load_default="", validate=validate.Length(max=1024))
    insecure = fields.Boolean(data_key="insecure", load_default=False, truthy={True}, falsy={False})
    root_cas = fields.List(
        _Str(validate=validate.Length(max=65536)),
        data_key="rootCAs",
        load_default=list,
        allow_none=True,
        validate=validate.Length(max=16),
    )


class PreheatCreateSchema(_PreheatOptions):
    """`POST /preheats` (PreheatCreateRequest, §11); `digest` is Harbor's artifact digest."""

    type = _Str(data_key="type", required=True, validate=validate.OneOf(PREHEAT_TYPES))
    url = _Str(
        data_key="url",
        required=True,
        validate=[validate.Length(min=3, max=MAX_URL_LENGTH), _preheat_url],
    )
    filter = _Str(data_key="filter", load_default="", validate=validate.Length(max=1024))
    identifier = _Str(data_key="identifier", load_default="", validate=validate.Length(max=1024))
    headers = _preheat_header_field("headers")
    digest = _Str(data_key="digest", load_default="", validate=validate.Length(max=256))


class CheckPreheatSchema(_PreheatOptions):
    """`POST /api/preheat` (seed 002, F0): an image `url` is `<registry>/<name>:<tag>`."""

    type = _Str(data_key="type", required=True, validate=validate.OneOf(PREHEAT_TYPES))
    url = _Str(data_key="url", required=True, validate=validate.Length(min=3, max=MAX_URL_LENGTH))
    header = _preheat_header_field("header")


PREHEAT_CREATE = PreheatCreateSchema()
CHECK_PREHEAT = CheckPreheatSchema()


class PreheatBodyError(ValueError):
    """A preheat request body that does not load; the message is one readable line."""


def load_preheat_body(schema: WireSchema, data: Any) -> dict[str, Any]:
    """Load with `schema`, translating marshmallow's error once for the preheat handlers."""
    try:
        loaded: dict[str, Any] = schema.load(data)
    except ValidationError as exc:
        raise PreheatBodyError(first_error(exc)) from exc
    return loaded


# ---- open api ------------------------------------------------------------------------------
# The Dragonfly2-style Open API (`/oapi/v1`, reference §B): job create / patch / list bodies and
# queries, personal access tokens. Go's JSON decoding ignores unknown keys and matches keys
# case-insensitively, so does WireSchema; Harbor's zero values (`tag:""`, `timeout:0`,
# `concurrent_count:0`, `scope:""`) all load. Replies are built by `supernode/oapi/replies.py`.

OAPI_JOB_STATES = ("PENDING", "RECEIVED", "STARTED", "RETRY", "SUCCESS", "FAILURE")
OAPI_MAX_URLS = 100
OAPI_MAX_CLUSTERS = 100
OAPI_MAX_PER_PAGE = 10_000_000
OAPI_MAX_TIMEOUT_NS = 7 * 86400 * 10**9
_MIN_PIECE_LENGTH, _MAX_PIECE_LENGTH = 4 * 1024 * 1024, 64 * 1024 * 1024
_Int = fields.Integer


def _count(maximum: int, **kwargs: Any) -> fields.Integer:
    """A strict JSON integer within 0…maximum (0 = "not set", as Go's zero value)."""
    return _Int(strict=True, validate=validate.Range(min=0, max=maximum), **kwargs)


def _optional_url(value: str) -> None:
    if value:
        _preheat_url(value)


class OapiJobCreateSchema(WireSchema):
    """`POST /oapi/v1/jobs`, first pass: `args` stays raw until `type` says how to read it."""

    type = _Str(data_key="type", required=True, validate=validate.Length(min=1, max=64))
    bio = _Str(data_key="bio", load_default="", validate=validate.Length(max=1000))
    args = fields.Dict(data_key="args", load_default=dict, allow_none=True)
    user_id = _count(2**31, data_key="user_id", load_default=0)
    scheduler_cluster_ids = fields.List(
        _Int(strict=True, validate=validate.Range(min=1, max=2**63 - 1)),
        data_key="scheduler_cluster_ids",
        load_default=None,
        allow_none=True,
        validate=validate.Length(max=OAPI_MAX_CLUSTERS),
    )


class OapiPreheatArgsSchema(_PreheatOptions):
    """PreheatArgs (DF2 HEAD and DF2‑24 fields); `filteredQueryParams` and `pieceLength` are the
    spellings older DF2 releases and the D7Y curl examples use."""

    type = _Str(data_key="type", required=True, validate=validate.OneOf(PREHEAT_TYPES))
    url = _Str(
        data_key="url",
        load_default="",
        validate=[validate.Length(max=MAX_URL_LENGTH), _optional_url],
    )
    urls = fields.List(
        _Str(validate=[validate.Length(min=3, max=MAX_URL_LENGTH), _preheat_url]),
        data_key="urls",
        load_default=list,
        allow_none=True,
        validate=validate.Length(max=OAPI_MAX_URLS),
    )
    tag = _Str(data_key="tag", load_default="", validate=validate.Length(max=1024))
    application = _Str(data_key="application", load_default="", validate=validate.Length(max=1024))
    filtered_query_params = _Str(
        data_key="filtered_query_params", load_default="", validate=validate.Length(max=4096)
    )
    filtered_query_params_camel = _Str(
        data_key="filteredQueryParams", load_default="", validate=validate.Length(max=4096)
    )
    headers = _preheat_header_field("headers")
    scope = _Str(data_key="scope", load_default="", validate=validate.Length(max=64))
    piece_length = _Int(
        data_key="piece_length",
        strict=True,
        load_default=None,
        allow_none=True,
        validate=validate.Range(min=_MIN_PIECE_LENGTH, max=_MAX_PIECE_LENGTH),
    )
    piece_length_camel = _Int(
        data_key="pieceLength",
        strict=True,
        load_default=None,
        allow_none=True,
        validate=validate.Range(min=_MIN_PIECE_LENGTH, max=_MAX_PIECE_LENGTH),
    )
    ips = fields.List(
        _Str(validate=validate.Length(min=1, max=64)),
        data_key="ips",
        load_default=list,
        allow_none=True,
        validate=validate.Length(max=100),
    )
    count = _count(200, data_key="count", load_default=None, allow_none=True)
    percentage = _count(100, data_key="percentage", load_default=None, allow_none=True)
    concurrent_count = _count(500, data_key="concurrent_count", load_default=0)
    concurrent_task_count = _count(100, data_key="concurrent_task_count", load_default=0)
    concurrent_peer_count = _count(1000, data_key="concurrent_peer_count", load_default=0)
    # A Go time.Duration: integer nanoseconds ("30m" is a 422, as in DF2).
    timeout = _count(OAPI_MAX_TIMEOUT_NS, data_key="timeout", load_default=0)

    @post_load
    def _merge_spellings(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        camel_filter = data.pop("filtered_query_params_camel")
        data["filtered_query_params"] = data["filtered_query_params"] or camel_filter
        camel_length = data.pop("piece_length_camel")
        if data["piece_length"] is None:
            data["piece_length"] = camel_length
        data["headers"] = data["headers"] or {}
        data["urls"] = data["urls"] or []
        data["ips"] = data["ips"] or []
        if data["type"] == "image" and not data["url"]:
            raise ValidationError("url is required for an image preheat", "url")
        if data["type"] == "file" and not data["url"] and not data["urls"]:
            raise ValidationError("url or urls is required for a file preheat", "url")
        return data


class OapiJobPatchSchema(WireSchema):
    bio = _Str(data_key="bio", validate=validate.Length(max=1000))
    user_id = _count(2**31, data_key="user_id")


class OapiPageQuerySchema(WireSchema):
    """`page` and `per_page`; 0 means the default, as DF2's setPaginationDefault."""

    page = _Int(data_key="page", load_default=0, validate=validate.Range(min=0, max=2**31))
    per_page = _Int(
        data_key="per_page", load_default=0, validate=validate.Range(min=0, max=OAPI_MAX_PER_PAGE)
    )


class OapiJobListQuerySchema(OapiPageQuerySchema):
    type = _Str(data_key="type", load_default="", validate=validate.Length(max=64))
    state = _Str(data_key="state", load_default="", validate=validate.OneOf(("", *OAPI_JOB_STATES)))
    user_id = _Int(data_key="user_id", load_default=None, validate=validate.Range(min=0))


class OapiTokenCreateSchema(WireSchema):
    """`POST /api/v1/personal-access-tokens`; `expired_at` is RFC 3339 with a zone."""

    name = _Str(data_key="name", required=True, validate=validate.Length(min=1, max=256))
    bio = _Str(data_key="bio", load_default="", validate=validate.Length(max=1000))
    scopes = fields.List(
        _Str(validate=validate.Length(max=64)),
        data_key="scopes",
        load_default=list,
        allow_none=True,
        validate=validate.Length(max=16),
    )
    expired_at = _Str(data_key="expired_at", required=True, validate=validate.Length(max=64))
    user_id = _count(2**31, data_key="user_id", load_default=0)


class OapiTokenPatchSchema(WireSchema):
    bio = _Str(data_key="bio", validate=validate.Length(max=1000))
    scopes = fields.List(
        _Str(validate=validate.Length(max=64)), data_key="scopes", validate=validate.Length(max=16)
    )
    state = _Str(data_key="state", validate=validate.OneOf(("active", "inactive")))
    expired_at = _Str(data_key="expired_at", validate=validate.Length(max=64))
    user_id = _count(2**31, data_key="user_id")


class OapiTokenListQuerySchema(OapiPageQuerySchema):
    state = _Str(
        data_key="state", load_default="", validate=validate.OneOf(("", "active", "inactive"))
    )


OAPI_JOB_CREATE = OapiJobCreateSchema()
OAPI_PREHEAT_ARGS = OapiPreheatArgsSchema()
OAPI_JOB_PATCH = OapiJobPatchSchema()
OAPI_JOB_LIST_QUERY = OapiJobListQuerySchema()
OAPI_PAGE_QUERY = OapiPageQuerySchema()
OAPI_TOKEN_CREATE = OapiTokenCreateSchema()
OAPI_TOKEN_PATCH = OapiTokenPatchSchema()
OAPI_TOKEN_LIST_QUERY = OapiTokenListQuerySchema()
