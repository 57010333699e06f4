"""The only code that talks to supernodes: register, pull, piece reports, service down, metrics.

Wire facts (§1, §3): query strings are `k=v` pairs in a fixed order, values not escaped; POST
bodies are JSON with `Content-Type: application/json;charset=utf-8`; every call has a 5 s
timeout and counts only with HTTP status 200 exactly; redirects are not followed.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import http.client
import json
import random
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dfget_client.control_http import ControlHttp
from dfget_client.errors import SupernodeError
from dfget_client.locator import Node
from dfget_client.plan import PieceTask, PullQuery, PullReply
from supernode.protocol.codes import ClientErrorType, ResultCode

JSON_CONTENT_TYPE = "application/json;charset=utf-8"
DEFAULT_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class RegisterRequest:
    """What dfget tells the supernode about itself and the file (§3.1)."""

    raw_url: str
    task_url: str
    cid: str
    ip: str
    host_name: str
    port: int
    path: str
    version: str
    pattern: str
    md5: str = ""
    identifier: str = ""
    callsystem: str = ""
    headers: tuple[str, ...] = ()
    dfdaemon: bool = False
    insecure: bool = False
    root_cas: tuple[bytes, ...] = ()


@dataclass(frozen=True, slots=True)
class RegisterReply:
    code: int
    msg: str = ""
    task_id: str = ""
    file_length: int = -1
    piece_size: int = 0
    cdn_source: str = "supernode"


def register_body(req: RegisterRequest, super_node_ip: str) -> dict[str, Any]:
    """Go struct order; `omitempty` fields vanish; identifier only without md5."""
    body: dict[str, Any] = {
        "superNodeIp": super_node_ip,
        "rawUrl": req.raw_url,
        "taskUrl": req.task_url,
        "cid": req.cid,
        "ip": req.ip,
        "hostName": req.host_name,
        "port": req.port,
        "path": req.path,
    }
    optional: list[tuple[str, Any]] = [
        ("version", req.version),
        ("md5", req.md5),
        ("identifier", "" if req.md5 else req.identifier),
        ("callSystem", req.callsystem),
        ("headers", list(req.headers)),
        ("dfdaemon", req.dfdaemon),
        ("insecure", req.insecure),
        ("rootCAs", [base64.b64encode(ca).decode("ascii") for ca in req.root_cas]),
        ("pattern", req.pattern),
    ]
    body.update((key, value) for key, value in optional if value)
    return body


def _query(pairs: Sequence[tuple[str, object]]) -> str:
    """`httputils.ParseQuery`: `tag=value` joined with `&`, values not URL-escaped."""
    return "&".join(f"{key}={value}" for key, value in pairs)


def pull_query(q: PullQuery) -> str:
    return _query(
        [
            ("srcCid", q.src_cid),
            ("dstCid", q.dst_cid),
            ("range", q.range),
            ("result", q.result),
            ("status", q.status),
            ("taskId", q.task_id),
        ]
    )


def piece_suc_query(task_id: str, cid: str, dst_cid: str, piece_range: str) -> str:
    return _query(
        [("taskId", task_id), ("cid", cid), ("dstCid", dst_cid), ("pieceRange", piece_range)]
    )


def piece_error_query(
    error_type: ClientErrorType,
    *,
    src_cid: str,
    dst_cid: str,
    dst_ip: str,
    task_id: str,
    piece_range: str,
    real_md5: str,
    expected_md5: str,
) -> str:
    """FILE_NOT_EXIST carries only errorType/srcCid/dstCid/taskId (§3.4)."""
    full = error_type is ClientErrorType.FILE_MD5_NOT_MATCH
    return _query(
        [
            ("errorType", error_type.value),
            ("srcCid", src_cid),
            ("dstCid", dst_cid),
            ("dstIp", dst_ip if full else ""),
            ("taskId", task_id),
            ("range", piece_range if full else ""),
            ("realMd5", real_md5 if full else ""),
            ("expectedMd5", expected_md5 if full else ""),
        ]
    )


def service_down_query(task_id: str, cid: str) -> str:
    return _query([("taskId", task_id), ("cid", cid)])


def metrics_body(
    *,
    ip: str,
    backsource_reason: int,
    cid: str,
    callsystem: str,
    duration: float,
    file_length: int,
    port: int,
    success: bool,
    task_id: str,
) -> dict[str, Any]:
    """`TaskMetricsRequest`, keys in the Go order, zero values omitted (§3.6)."""
    fields: list[tuple[str, Any]] = [
        ("IP", ip),
        ("backsourceReason", str(backsource_reason)),
        ("cID", cid),
        ("callSystem", callsystem),
        ("duration", round(duration, 6)),
        ("fileLength", file_length),
        ("port", port),
        ("success", success),
        ("taskId", task_id),
    ]
    return {key: value for key, value in fields if value}


def parse_register_reply(obj: Any) -> RegisterReply:
    if not isinstance(obj, Mapping) or not isinstance(obj.get("code", 0), int):
        raise ValueError("registration reply is not a result object")
    code = int(obj.get("code", 0))
    msg = str(obj.get("msg", "") or obj.get("message", ""))
    data = obj.get("data")
    if code != ResultCode.SUCCESS or not isinstance(data, Mapping):
        return RegisterReply(code=code, msg=msg)
    task_id, length, size = data.get("taskId"), data.get("fileLength", -1), data.get("pieceSize")
    if not isinstance(task_id, str) or not task_id or not isinstance(length, int):
        raise ValueError("registration reply without taskId/fileLength")
    if not isinstance(size, int) or size <= 5:
        raise ValueError(f"registration reply with a bad pieceSize {size!r}")
    source = data.get("cdnSource") or "supernode"
    return RegisterReply(code, msg, task_id, length, size, str(source))


def parse_pull_reply(obj: Any) -> PullReply:
    """Unusable piece items are dropped; the code decides what happens next."""
    if not isinstance(obj, Mapping) or not isinstance(obj.get("code", 0), int):
        raise ValueError("pull reply is not a result object")
    code = int(obj.get("code", 0))
    msg = str(obj.get("msg", ""))
    data = obj.get("data")
    if code == ResultCode.PEER_FINISH:
        md5 = data.get("md5", "") if isinstance(data, Mapping) else ""
        return PullReply(code, md5=md5 if isinstance(md5, str) else "", msg=msg)
    pieces: list[PieceTask] = []
    if code == ResultCode.PEER_CONTINUE and isinstance(data, list):
        for item in data:
            try:
                pieces.append(PieceTask.from_wire(item))
            except (ValueError, AttributeError, TypeError):
                continue
    return PullReply(code, tuple(pieces), msg=msg)


class SupernodeApi:
    """Every supernode call of this process, over keep-alive connections (`ControlHttp`)."""

    def __init__(self, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._timeout = timeout
        self._http = ControlHttp()

    async def close(self) -> None:
        self._http.close()

    async def _call(
        self, method: str, addr: str, path: str, *, query: str = "", body: Any = None
    ) -> Any:
        target = path + (f"?{query}" if query else "")
        data = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        headers = {"Content-Type": JSON_CONTENT_TYPE} if data is not None else {}
        try:
            status, payload = await self._http.request(
                method, addr, target, headers=headers, body=data, timeout=self._timeout
            )
        except (TimeoutError, OSError, http.client.HTTPException, ValueError) as exc:
            raise SupernodeError(f"{method} {addr}{path}: {exc.__class__.__name__} {exc}") from exc
        if status != 200:
            text = f"{method} {addr}{path}: HTTP {status} {payload[:200]!r}"
            raise SupernodeError(text, http_status=status)
        if not payload.strip():
            return None
        try:
            return json.loads(payload)
        except ValueError as exc:
            raise SupernodeError(f"{method} {addr}{path}: body is not JSON") from exc

    async def register(self, node: Node, req: RegisterRequest) -> RegisterReply:
        obj = await self._call(
            "POST", node.addr, "/peer/registry", body=register_body(req, node.host)
        )
        try:
            return parse_register_reply(obj)
        except ValueError as exc:
            raise SupernodeError(f"register at {node.addr}: {exc}") from exc

    async def pull(self, addr: str, query: PullQuery) -> PullReply:
        obj = await self._call("GET", addr, "/peer/task", query=pull_query(query))
        try:
            return parse_pull_reply(obj)
        except ValueError as exc:
            raise SupernodeError(f"pull at {addr}: {exc}") from exc

    async def report_piece(
        self,
        addr: str,
        *,
        task_id: str,
        cid: str,
        dst_cid: str,
        piece_range: str,
        attempts: int = 3,
    ) -> bool:
        """Retried with 50–550 ms sleeps; the reply code is not checked (as the original)."""
        query = piece_suc_query(task_id, cid, dst_cid, piece_range)
        for attempt in range(attempts):
            try:
                await self._call("GET", addr, "/peer/piece/suc", query=query)
                return True
            except SupernodeError:
                if attempt + 1 < attempts:
                    await asyncio.sleep(random.uniform(0.05, 0.55))
        return False

    async def report_piece_error(self, addr: str, query: str) -> None:
        with contextlib.suppress(SupernodeError):  # the original ignores the reply too
            await self._call("GET", addr, "/peer/piece/error", query=query)

    async def service_down(self, addr: str, task_id: str, cid: str) -> bool:
        try:
            await self._call(
                "GET", addr, "/peer/service/down", query=service_down_query(task_id, cid)
            )
            return True
        except SupernodeError:
            return False

    async def report_metrics(self, addr: str, body: Mapping[str, Any]) -> int:
        """Post at most twice, stopping after a reply with `code` 1; → number of posts."""
        for attempt in (1, 2):
            try:
                obj = await self._call("POST", addr, "/task/metrics", body=dict(body))
            except SupernodeError:
                continue
            if isinstance(obj, Mapping) and obj.get("code") == 1:
                return attempt
        return 2


def local_ip_towards(nodes: Sequence[Node], timeout: float = 1.0) -> str:
    """The local address of a TCP connection to the first reachable supernode ("" if none)."""
    for node in nodes:
        try:
            with socket.create_connection((node.host, node.port), timeout=timeout) as sock:
                address = sock.getsockname()[0]
                if isinstance(address, str) and address.count(".") == 3:
                    return address
        except OSError:
            continue
    return ""
