"""Image expansion over the registry v2 protocol: manifests, indexes, token and Basic auth."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import re
import ssl
from dataclasses import dataclass

import aiohttp

from supernode.preheat.manifests import (
    MANIFEST_MEDIA_TYPES,
    Descriptor,
    ManifestError,
    ManifestRef,
    digest_matches,
    host_platform,
    is_digest,
    parse_manifest,
    select_children,
)

MAX_MANIFEST_BYTES = 4 * 1024 * 1024
MAX_TOKEN_BYTES = 1024 * 1024
MAX_DEPTH = 3  # index → (nested index →) manifest
MAX_BLOBS = 4096
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=60, sock_connect=10)
_PARAM_RE = re.compile(r'([A-Za-z][\w-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


class RegistryError(Exception):
    """The image could not be expanded; the message is the reason shown in the job."""


@dataclass(frozen=True, slots=True)
class ExpandRequest:
    ref: ManifestRef
    headers: tuple[tuple[str, str], ...] = ()
    platform: str = ""
    username: str = ""
    password: str = ""
    insecure: bool = False
    root_cas: tuple[bytes, ...] = ()


@dataclass(frozen=True, slots=True)
class Expansion:
    """Config and layer blobs of the chosen manifests (deduplicated), the digest of the
    manifest the URL named, and the Authorization value the blob requests must carry."""

    blobs: tuple[Descriptor, ...]
    manifest_digest: str
    authorization: str = ""


def ssl_option(insecure: bool, root_cas: tuple[bytes, ...]) -> ssl.SSLContext | bool:
    """aiohttp's `ssl=`: no verification, the system roots plus the given CAs, or defaults."""
    if insecure:
        return False
    if not root_cas:
        return True
    context = ssl.create_default_context()
    for ca in root_cas:
        text = ca.decode("ascii", "replace")
        context.load_verify_locations(cadata=text if "-----BEGIN" in text else ca)
    return context


async def expand_image(request: ExpandRequest) -> Expansion:
    """Fetch the manifest (and children of an index), with auth, and list the blobs to warm."""
    host = request.ref.host
    try:
        connector = aiohttp.TCPConnector(ssl=ssl_option(request.insecure, request.root_cas))
    except (ssl.SSLError, ValueError) as exc:
        raise RegistryError(f"invalid root CA certificate: {exc}") from exc
    async with aiohttp.ClientSession(timeout=REQUEST_TIMEOUT, connector=connector) as session:
        try:
            return await _Client(session, request).expand()
        except ManifestError as exc:
            raise RegistryError(str(exc)) from exc
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            reason = str(exc) or type(exc).__name__
            raise RegistryError(f"cannot reach registry {host}: {reason}") from exc


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """`Bearer realm="R",service="S",scope="X"` → ("bearer", {realm, service, scope})."""
    scheme, _, rest = header.strip().partition(" ")
    params = {
        m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3)).replace(
            '\\"', '"'
        )
        for m in _PARAM_RE.finditer(rest)
    }
    return scheme.lower(), params


class _Client:
    def __init__(self, session: aiohttp.ClientSession, request: ExpandRequest) -> None:
        self.session = session
        self.request = request
        self.ref = request.ref
        given = [v for k, v in request.headers if k.lower() == "authorization"]
        # A given Authorization (Harbor's token) is used as is: no ping, no token exchange.
        self.authorization = given[0] if given else ""
        self.given = bool(given)
        self.extra = {
            k: v for k, v in request.headers if k.lower() not in ("authorization", "accept")
        }

    async def expand(self) -> Expansion:
        content_type, body, header_digest = await self._manifest(self.ref.reference)
        if is_digest(self.ref.reference):
            if not digest_matches(self.ref.reference, body):
                raise RegistryError(f"manifest {self.ref.reference} does not match its digest")
            top = self.ref.reference
        elif is_digest(header_digest):
            top = header_digest
        else:
            top = "sha256:" + hashlib.sha256(body).hexdigest()
        blobs = await self._collect(content_type, body, 0, "")
        first: dict[str, Descriptor] = {}
        for blob in blobs:  # platforms share layers: warm each blob once
            first.setdefault(blob.digest, blob)
        unique = tuple(first.values())
        if not unique:
            raise RegistryError(f"manifest {self.ref.manifest_url()} lists no blobs")
        if len(unique) > MAX_BLOBS:
            raise RegistryError(f"image has {len(unique)} blobs, more than {MAX_BLOBS}")
        return Expansion(unique, top, self.authorization)

    async def _collect(
        self, content_type: str, body: bytes, depth: int, platform: str
    ) -> list[Descriptor]:
        manifest = parse_manifest(content_type, body)
        if not manifest.is_index:
            return [dataclasses.replace(b, platform=platform) for b in manifest.blobs]
        if depth >= MAX_DEPTH:
            raise RegistryError("manifest indexes nested too deeply")
        want = self.request.platform or host_platform()
        chosen = select_children(manifest.children, want)
        if not chosen:
            offered = ", ".join(sorted({c.platform or "?" for c in manifest.children})) or "none"
            raise RegistryError(f"no matching manifest for platform {want} (offered: {offered})")
        blobs: list[Descriptor] = []
        for child in chosen:
            child_type, child_body, _ = await self._manifest(child.digest)
            if not digest_matches(child.digest, child_body):
                raise RegistryError(f"manifest {child.digest} does not match its digest")
            blobs.extend(await self._collect(child_type, child_body, depth + 1, child.platform))
        return blobs

    async def _manifest(self, reference: str) -> tuple[str, bytes, str]:
        url = self.ref.manifest_url(reference)
        for attempt in range(2):
            headers = {**self.extra, "Accept": ", ".join(MANIFEST_MEDIA_TYPES)}
            if self.authorization:
                headers["Authorization"] = self.authorization
            async with self.session.get(url, headers=headers) as resp:
                if resp.status == 401 and attempt == 0 and not self.given:
                    challenge = resp.headers.get("WWW-Authenticate", "")
                    self.authorization = await self._authorize(challenge)
                    continue
                if resp.status != 200:
                    raise RegistryError(f"GET {url}: HTTP {resp.status} {await _snippet(resp)}")
                body = await _read_limited(resp, MAX_MANIFEST_BYTES, url)
                content_type = resp.headers.get("Content-Type", "")
                return content_type, body, resp.headers.get("Docker-Content-Digest", "")
        raise RegistryError(f"GET {url}: HTTP 401 even with the credentials the registry asked for")

    async def _authorize(self, challenge: str) -> str:
        scheme, params = parse_challenge(challenge)
        user, password = self.request.username, self.request.password
        if scheme == "basic":
            if not user:
                raise RegistryError(
                    "registry requires Basic authentication: give username/password"
                )
            return _basic(user, password)
        if scheme != "bearer" or not params.get("realm", "").startswith(("http://", "https://")):
            raise RegistryError(f"registry answered 401 with an unusable challenge {challenge!r}")
        realm = params["realm"]
        query = {"scope": params.get("scope") or f"repository:{self.ref.repository}:pull"}
        if params.get("service"):
            query["service"] = params["service"]
        headers = {"Authorization": _basic(user, password)} if user else {}
        async with self.session.get(realm, params=query, headers=headers) as resp:
            if resp.status != 200:
                raise RegistryError(
                    f"token request to {realm} failed: HTTP {resp.status} {await _snippet(resp)}"
                )
            raw = await _read_limited(resp, MAX_TOKEN_BYTES, realm)
        try:
            doc = json.loads(raw)
        except ValueError as exc:
            raise RegistryError(f"token server {realm} answered invalid JSON") from exc
        token = (doc.get("token") or doc.get("access_token")) if isinstance(doc, dict) else None
        if not isinstance(token, str) or not token:
            raise RegistryError(f"token server {realm} answered no token")
        return f"Bearer {token}"


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


async def _read_limited(resp: aiohttp.ClientResponse, limit: int, url: str) -> bytes:
    body = await resp.content.read(limit + 1)
    if len(body) > limit:
        raise RegistryError(f"{url} answered more than {limit} bytes")
    return body


async def _snippet(resp: aiohttp.ClientResponse) -> str:
    raw = await resp.content.read(300)
    return " ".join(raw.decode("utf-8", "replace").split())[:200]
