"""Fixtures of the preheat tests: real registries, a token server, an object store, a warmer."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp import web

from supernode.preheat.registry import ssl_option
from supernode.preheat.warmer import WarmError, WarmRequest, WarmResult
from supernode.protocol import ids
from tests.preheat import registry_kit as kit
from tests.preheat.registry_kit import Pki, Registry

TOKEN_USER, TOKEN_PASSWORD = "puller", "s3cret"


class _Server:
    """A threaded http.server on 127.0.0.1 that counts what it served."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.owner = self  # type: ignore[attr-defined]
        self.requests: list[str] = []
        self.bytes_sent = 0
        self.full_gets = 0  # whole-body GETs (Range probes of one byte are not downloads)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _ObjectStoreHandler(BaseHTTPRequestHandler):
    """Where the registry's `redirect` middleware sends blob GETs: files of its storage root,
    with Range, ETag and If-None-Match like a real object store."""

    root: Path

    def do_GET(self) -> None:
        self._serve(body=True)

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def _serve(self, body: bool) -> None:
        owner = self.server.owner  # type: ignore[attr-defined]
        path = (owner.root / urlsplit(self.path).path.lstrip("/")).resolve()
        owner.requests.append(f"{self.command} {self.path}")
        if not path.is_relative_to(owner.root) or not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        etag = '"' + hashlib.sha256(data).hexdigest()[:32] + '"'
        if self.headers.get("If-None-Match") == etag:  # lets a CDN revalidate its cache
            self.send_response(304)
            self.send_header("ETag", etag)
            self.end_headers()
            return
        status, first, last = 200, 0, len(data) - 1
        wanted = self.headers.get("Range", "")
        if wanted.startswith("bytes=") and "," not in wanted and data:
            start, _, end = wanted[6:].partition("-")
            if start.isdigit() and int(start) < len(data):
                status, first = 206, int(start)
                last = min(int(end), last) if end.isdigit() else last
        chunk = data[first : last + 1]
        self.send_response(status)
        self.send_header("Content-Length", str(len(chunk)))
        if status == 206:
            self.send_header("Content-Range", f"bytes {first}-{last}/{len(data)}")
        self.send_header("ETag", etag)
        self.send_header("Last-Modified", "Mon, 02 Jan 2023 15:04:05 GMT")
        self.end_headers()
        if body:
            self.wfile.write(chunk)
            owner.bytes_sent += len(chunk)
            owner.full_gets += status == 200

    def log_message(self, *args: Any) -> None:
        pass


class _TokenHandler(BaseHTTPRequestHandler):
    """`GET /token?service=&scope=` with Basic credentials → a JWT granting pull."""

    def do_GET(self) -> None:
        owner = self.server.owner  # type: ignore[attr-defined]
        owner.requests.append(self.path)
        expected = base64.b64encode(f"{TOKEN_USER}:{TOKEN_PASSWORD}".encode()).decode()
        if self.headers.get("Authorization") != f"Basic {expected}":
            self.send_error(401, "bad credentials")
            return
        query = parse_qs(urlsplit(self.path).query)
        scope = query.get("scope", [""])[0]
        repository = scope.split(":")[1] if scope.count(":") >= 2 else ""
        if query.get("service") != [kit.SERVICE] or not repository:
            self.send_error(400, "bad service or scope")
            return
        token = kit.mint_token(owner.pki, repository, ["pull"])
        body = json.dumps({"token": token, "expires_in": 600}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="session")
def pki() -> Pki:
    return kit.make_pki()


@dataclass
class PlainSetup:
    registry: Registry
    store: _Server  # the object store blobs are redirected to: the origin of the bytes
    image: kit.PushedImage  # schema2, 3 layers, library/app:v1 (also tagged v1-alias)
    index: kit.PushedImage  # OCI index linux/amd64 + linux/arm64, multi/app:v1


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlainSetup]:
    workdir = tmp_path_factory.mktemp("plain-registry")
    kit.registry_binary()
    store = _Server(_ObjectStoreHandler)
    store.root = (workdir / "data").resolve()  # type: ignore[attr-defined]
    registry = kit.start_registry(workdir, redirect_base=store.url + "/")
    try:
        image = kit.push_schema2(registry, "library/app", "v1")
        alias = kit.push_schema2(registry, "library/app", "v1-alias")
        assert alias.manifest_digest == image.manifest_digest
        index = kit.push_oci_index(registry, "multi/app", "v1")
        yield PlainSetup(registry, store, image, index)
    finally:
        registry.stop()
        store.close()


@dataclass
class TokenSetup:
    registry: Registry
    tokens: _Server
    image: kit.PushedImage  # secret/app:v1


@pytest.fixture(scope="module")
def token_registry(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[TokenSetup]:
    workdir = tmp_path_factory.mktemp("token-registry")
    kit.registry_binary()
    tokens = _Server(_TokenHandler)
    tokens.pki = pki  # type: ignore[attr-defined]
    (workdir / "bundle.pem").write_bytes(pki.token_cert_pem)
    auth = {
        "token": {
            "realm": tokens.url + "/token",
            "service": kit.SERVICE,
            "issuer": kit.ISSUER,
            "rootcertbundle": str(workdir / "bundle.pem"),
        }
    }
    registry = kit.start_registry(workdir, auth=auth)
    try:
        registry.push_token["secret/app"] = kit.mint_token(pki, "secret/app", ["pull", "push"])
        image = kit.push_schema2(registry, "secret/app", "v1", layers=2, seed="tok")
        yield TokenSetup(registry, tokens, image)
    finally:
        registry.stop()
        tokens.close()


@pytest.fixture(scope="module")
def tls_registry(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[Registry]:
    registry = kit.start_registry(tmp_path_factory.mktemp("tls-registry"), tls=pki)
    try:
        kit.push_schema2(registry, "tls/app", "v1", layers=1, seed="tls")
        yield registry
    finally:
        registry.stop()


# ---- a warmer that really downloads (stands in for the CDN in engine tests) ----------------


@dataclass(frozen=True, slots=True)
class CheckedResult(WarmResult):
    """WarmResult plus the sha256 of the bytes (the additive field the engine verifies)."""

    sha256: str = ""


class DownloadingWarmer:
    """TaskWarmer that GETs the URL (following redirects), hashes it and remembers it."""

    def __init__(self) -> None:
        self.cache: dict[str, CheckedResult] = {}
        self.requests: list[WarmRequest] = []
        self.running: set[str] = set()
        self.gate: asyncio.Event | None = None
        self.fail: dict[str, str] = {}  # url substring → WarmError reason

    def task_id_for(self, request: WarmRequest) -> str:
        url = ids.filter_url(request.url, list(request.filter))
        return ids.task_id(url, identifier=request.identifier)

    async def warm(self, request: WarmRequest) -> WarmResult:
        self.requests.append(request)
        task = self.task_id_for(request)
        if task in self.cache:
            return dataclasses.replace(self.cache[task], cache_hit=True)
        self.running.add(task)
        try:
            if self.gate is not None:
                await self.gate.wait()
            for needle, reason in self.fail.items():
                if needle in request.url:
                    raise WarmError(reason)
            connector = aiohttp.TCPConnector(ssl=ssl_option(request.insecure, request.root_cas))
            async with aiohttp.ClientSession(connector=connector) as session:
                try:
                    async with session.get(request.url, headers=dict(request.headers)) as resp:
                        if resp.status != 200:
                            raise WarmError(f"origin answered HTTP {resp.status}")
                        data = await resp.read()
                except aiohttp.ClientError as exc:
                    raise WarmError(f"origin unreachable: {exc}") from exc
        finally:
            self.running.discard(task)
        result = CheckedResult(
            task_id=task,
            http_file_length=len(data),
            real_md5=hashlib.md5(data).hexdigest(),
            cache_hit=False,
            sha256=hashlib.sha256(data).hexdigest(),
        )
        self.cache[task] = result
        return result

    def progress(self, task_id: str) -> tuple[int, int] | None:
        if task_id in self.cache:
            return 1, 1
        return (0, 1) if task_id in self.running else None


@pytest.fixture
def warmer() -> DownloadingWarmer:
    return DownloadingWarmer()


# ---- odd registries: an in-test stub for what a real registry will not serve ---------------


def _schema1_body(digests: list[str]) -> bytes:
    layers = [{"blobSum": d} for d in digests]
    return json.dumps(
        {"schemaVersion": 1, "name": "s1/app", "tag": "v1", "fsLayers": layers}
    ).encode()


@pytest.fixture
async def stub(aiohttp_server):
    empty, layer = kit.sha256_digest(b""), kit.sha256_digest(b"layer")

    async def manifest(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name == "s1/app":
            if request.headers.get("Authorization") != "Basic dTpw":  # u:p
                return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="stub"'})
            body = _schema1_body([layer, empty, empty])
            return web.Response(
                body=body, content_type="application/vnd.docker.distribution.manifest.v1+prettyjws"
            )
        if name == "broken/app":
            return web.Response(status=500, text="boom")
        if name == "garbage/app":
            return web.Response(
                body=b"{not json",
                content_type="application/vnd.docker.distribution.manifest.v2+json",
            )
        if name == "liar/app":  # the layer blob it serves is not the bytes its digest names
            manifest = {
                "schemaVersion": 2,
                "mediaType": kit.SCHEMA2,
                "config": {"mediaType": kit.SCHEMA2_CONFIG, "size": 0, "digest": empty},
                "layers": [{"mediaType": kit.SCHEMA2_LAYER, "size": 5, "digest": layer}],
            }
            return web.json_response(manifest, content_type=kit.SCHEMA2)
        if name == "weird/app":
            return web.Response(status=401, headers={"WWW-Authenticate": "Negotiate"})
        return web.Response(status=404)

    async def blob(request: web.Request) -> web.Response:
        return web.Response(body=b"" if request.match_info["digest"] == empty else b"LAYER")

    app = web.Application()
    app.router.add_get("/v2/{name:.+}/manifests/{ref}", manifest)
    app.router.add_get("/v2/{name:.+}/blobs/{digest}", blob)
    server = await aiohttp_server(app)
    server.digests = (layer, empty)
    return server
