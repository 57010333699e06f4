"""What dfget puts on the wire, byte for byte: query strings (§3.2–3.5), JSON bodies (§3.1,
§3.6), headers, HTTP 200 exactly, and how replies are read (§5)."""

from __future__ import annotations

import json

import pytest
from aiohttp import web

from dfget_client.errors import SupernodeError
from dfget_client.locator import Node
from dfget_client.plan import PullQuery
from dfget_client.supernode_api import (
    RegisterRequest,
    SupernodeApi,
    metrics_body,
    parse_pull_reply,
    parse_register_reply,
    piece_error_query,
    piece_suc_query,
    pull_query,
    register_body,
    service_down_query,
)
from supernode.protocol.codes import ClientErrorType

TASK = "7ab65f713a207a0603ca24711fa209c81359ab72fbf52913cbb54c67cf8ccf05"
CID = "10.0.0.5-4242-1600000000.123"
SN = "cdnnode:10.0.0.1~" + TASK


def test_first_pull_query() -> None:
    q = PullQuery(CID, "", "", 502, 700, TASK)
    assert pull_query(q) == f"srcCid={CID}&dstCid=&range=&result=502&status=700&taskId={TASK}"


def test_running_pull_query_is_not_escaped() -> None:
    q = PullQuery(CID, SN, "0-4194303", 503, 701, TASK)
    assert pull_query(q) == (
        f"srcCid={CID}&dstCid=cdnnode:10.0.0.1~{TASK}&range=0-4194303&result=503&status=701"
        f"&taskId={TASK}"
    )


def test_piece_suc_query() -> None:
    assert piece_suc_query(TASK, CID, SN, "0-4194303") == (
        f"taskId={TASK}&cid={CID}&dstCid={SN}&pieceRange=0-4194303"
    )


def test_piece_error_queries() -> None:
    common = dict(src_cid=CID, dst_cid="10.0.0.7-1-1.000", dst_ip="10.0.0.7", task_id=TASK)
    md5 = piece_error_query(
        ClientErrorType.FILE_MD5_NOT_MATCH, piece_range="0-4194303", real_md5="a" * 32,
        expected_md5="b" * 32, **common,
    )  # fmt: skip
    assert md5 == (
        f"errorType=FILE_MD5_NOT_MATCH&srcCid={CID}&dstCid=10.0.0.7-1-1.000&dstIp=10.0.0.7"
        f"&taskId={TASK}&range=0-4194303&realMd5={'a' * 32}&expectedMd5={'b' * 32}"
    )
    missing = piece_error_query(
        ClientErrorType.FILE_NOT_EXIST, piece_range="0-4194303", real_md5="", expected_md5="",
        **common,
    )  # fmt: skip
    assert missing == (
        f"errorType=FILE_NOT_EXIST&srcCid={CID}&dstCid=10.0.0.7-1-1.000&dstIp="
        f"&taskId={TASK}&range=&realMd5=&expectedMd5="
    )


def test_service_down_query() -> None:
    assert service_down_query(TASK, CID) == f"taskId={TASK}&cid={CID}"


def _request(**kw: object) -> RegisterRequest:
    base: dict[str, object] = dict(
        raw_url="http://10.0.0.9/helloworld.txt?sign=x", task_url="http://10.0.0.9/helloworld.txt",
        cid=CID, ip="10.0.0.5", host_name="node5", port=15234,
        path="/peer/file/helloworld.txt-4242-1600000000.123", version="1.0.6", pattern="p2p",
    )  # fmt: skip
    base.update(kw)
    return RegisterRequest(**base)  # type: ignore[arg-type]


def test_register_body_matches_the_reference_example() -> None:
    body = register_body(_request(), "10.0.0.1")
    expected = (
        '{"superNodeIp":"10.0.0.1","rawUrl":"http://10.0.0.9/helloworld.txt?sign=x",'
        '"taskUrl":"http://10.0.0.9/helloworld.txt","cid":"10.0.0.5-4242-1600000000.123",'
        '"ip":"10.0.0.5","hostName":"node5","port":15234,'
        '"path":"/peer/file/helloworld.txt-4242-1600000000.123","version":"1.0.6","pattern":"p2p"}'
    )
    assert json.dumps(body, separators=(",", ":")) == expected


def test_register_body_optional_fields() -> None:
    body = register_body(
        _request(md5="c" * 32, identifier="id", callsystem="ci", headers=("A: b",),
                 dfdaemon=True, insecure=True, root_cas=(b"PEM",), port=0, pattern="cdn"),
        "sn",
    )  # fmt: skip
    assert list(body)[7:] == [
        "path", "version", "md5", "callSystem", "headers", "dfdaemon", "insecure", "rootCAs",
        "pattern",
    ]  # fmt: skip
    assert "identifier" not in body  # only sent without md5
    assert body["rootCAs"] == ["UEVN"] and body["headers"] == ["A: b"] and body["port"] == 0
    assert register_body(_request(identifier="id"), "sn")["identifier"] == "id"


def test_metrics_body_omits_zero_values() -> None:
    body = metrics_body(
        ip="10.0.0.5", backsource_reason=0, cid=CID, callsystem="", duration=1.73,
        file_length=10, port=15234, success=True, task_id=TASK,
    )  # fmt: skip
    assert list(body) == [
        "IP", "backsourceReason", "cID", "duration", "fileLength", "port", "success", "taskId",
    ]  # fmt: skip
    assert body["backsourceReason"] == "0"
    failed = metrics_body(
        ip="i", backsource_reason=3, cid="c", callsystem="x", duration=0, file_length=0,
        port=0, success=False, task_id="t",
    )  # fmt: skip
    assert "success" not in failed and "port" not in failed and failed["callSystem"] == "x"


def test_parse_replies() -> None:
    reg = parse_register_reply(
        {"code": 200, "data": {"taskId": TASK, "fileLength": 10, "pieceSize": 4194304,
                               "cdnSource": "supernode", "asSeed": False, "seedTaskID": ""},
         "msg": "success"}
    )  # fmt: skip
    assert (reg.code, reg.task_id, reg.file_length, reg.piece_size) == (200, TASK, 10, 4194304)
    assert parse_register_reply({"code": 608, "msg": "auth"}).code == 608
    with pytest.raises(ValueError):
        parse_register_reply({"code": 200, "data": {"taskId": TASK, "pieceSize": 2}})
    item = {"range": "0-4194303", "pieceNum": 0, "pieceSize": 4194304,
            "pieceMd5": "904bc91e4244a65ff76b6ba4af620ce1:15", "cid": SN, "peerIp": "10.0.0.1",
            "peerPort": 8001, "path": f"/download/7ab/{TASK}", "downLink": 0}  # fmt: skip
    pull = parse_pull_reply({"code": 601, "data": [item, {"range": "bad"}]})
    assert pull.code == 601 and len(pull.pieces) == 1  # the unusable item is dropped
    done = parse_pull_reply({"code": 600, "data": {"fileLength": 15, "md5": "f" * 32}})
    assert (done.code, done.md5) == (600, "f" * 32)
    assert parse_pull_reply({"code": 602, "msg": "wait"}).msg == "wait"


async def test_requests_on_the_wire(aiohttp_server) -> None:  # type: ignore[no-untyped-def]
    seen: list[tuple[str, str, dict[str, str], bytes]] = []

    async def record(request: web.Request) -> web.Response:
        seen.append((request.method, request.raw_path, dict(request.headers), await request.read()))
        if request.path == "/peer/task":
            return web.json_response({"code": 602, "msg": "wait"})
        if request.path == "/peer/registry":
            return web.json_response({"code": 200, "data": {"taskId": TASK, "fileLength": 5,
                                                             "pieceSize": 4194304}})  # fmt: skip
        if request.path == "/task/metrics":
            return web.Response(text="null\n")
        return web.json_response({"code": 611})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    server = await aiohttp_server(app)
    addr = f"127.0.0.1:{server.port}"
    api = SupernodeApi()
    try:
        q = PullQuery(CID, SN, "0-4194303", 503, 701, TASK)
        assert (await api.pull(addr, q)).code == 602
        reg = await api.register(Node("127.0.0.1", server.port), _request())
        assert reg.task_id == TASK
        assert await api.report_metrics(addr, {"IP": "x"}) == 2  # `null` → posted twice
    finally:
        await api.close()
    method, raw, _, _ = seen[0]
    assert (method, raw) == ("GET", f"/peer/task?{pull_query(q)}")
    method, raw, headers, body = seen[1]
    assert (method, raw) == ("POST", "/peer/registry")
    assert headers["Content-Type"] == "application/json;charset=utf-8"
    assert json.loads(body)["superNodeIp"] == "127.0.0.1"
    assert [s[1] for s in seen[2:]] == ["/task/metrics", "/task/metrics"]


async def test_only_http_200_counts(aiohttp_server) -> None:  # type: ignore[no-untyped-def]
    async def created(request: web.Request) -> web.Response:
        return web.json_response({"code": 601, "data": []}, status=201)

    async def metrics(request: web.Request) -> web.Response:
        return web.json_response({"code": 1})

    app = web.Application()
    app.router.add_get("/peer/task", created)
    app.router.add_post("/task/metrics", metrics)
    server = await aiohttp_server(app)
    api = SupernodeApi()
    try:
        with pytest.raises(SupernodeError) as info:
            await api.pull(f"127.0.0.1:{server.port}", PullQuery("a", "", "", 502, 700, "t"))
        assert info.value.http_status == 201
        assert await api.report_metrics(f"127.0.0.1:{server.port}", {"IP": "x"}) == 1
        with pytest.raises(SupernodeError) as refused:
            await api.pull("127.0.0.1:1", PullQuery("a", "", "", 502, 700, "t"))
        assert refused.value.http_status is None
    finally:
        await api.close()
