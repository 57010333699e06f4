"""Registry v2 names and manifests, pure: manifest URLs, image references, parsing, platforms."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import platform as host
import re
import sys
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
DOCKER_SCHEMA2 = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
# Every type we can read, in the Accept header of each manifest request (as DF2 sends them).
MANIFEST_MEDIA_TYPES = (
    DOCKER_SCHEMA1_SIGNED,
    "application/json",
    DOCKER_SCHEMA2,
    DOCKER_LIST,
    OCI_MANIFEST,
    OCI_INDEX,
)
_INDEX_TYPES = frozenset({DOCKER_LIST, OCI_INDEX})
_IMAGE_TYPES = frozenset({DOCKER_SCHEMA2, OCI_MANIFEST})
_SCHEMA1_TYPES = frozenset({DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED})
# Layers that registries never hold (Windows base layers): they live at their own `urls`.
_FOREIGN = (
    "application/vnd.docker.image.rootfs.foreign.",
    "application/vnd.oci.image.layer.nondistributable.",
)

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_NAME_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_DIGEST_RE = re.compile(r"^(sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128})$")
_HOST_RE = re.compile(
    r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.?)+(?::\d{1,5})?$"
    r"|^\[[0-9a-fA-F:.]+\](?::\d{1,5})?$"
)
_MANIFEST_PATH_RE = re.compile(r"^/v2/(.+)/manifests/([^/]+)$")
_ARCH = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "i386": "386",
    "i686": "386",
    "armv7l": "arm",
    "armv6l": "arm",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
}


class ManifestError(ValueError):
    """A manifest, URL or reference that cannot be used; the message says why."""


@dataclass(frozen=True, slots=True)
class ManifestRef:
    scheme: str
    host: str
    repository: str
    reference: str

    @property
    def base(self) -> str:
        return f"{self.scheme}://{self.host}/v2/{self.repository}"

    def manifest_url(self, reference: str | None = None) -> str:
        return f"{self.base}/manifests/{reference or self.reference}"

    def blob_url(self, digest: str) -> str:
        return f"{self.base}/blobs/{digest}"


@dataclass(frozen=True, slots=True)
class Descriptor:
    digest: str
    media_type: str = ""
    size: int = -1
    platform: str = ""


@dataclass(frozen=True, slots=True)
class Manifest:
    """An image manifest lists `blobs`; an index (or manifest list) lists `children`."""

    media_type: str
    blobs: tuple[Descriptor, ...] = ()
    children: tuple[Descriptor, ...] = ()

    @property
    def is_index(self) -> bool:
        return self.media_type in _INDEX_TYPES


def is_digest(value: str) -> bool:
    return bool(_DIGEST_RE.match(value))


def digest_matches(digest: str, data: bytes) -> bool:
    algorithm, _, expected = digest.partition(":")
    if algorithm not in ("sha256", "sha512"):
        return False
    return hashlib.new(algorithm, data).hexdigest() == expected


def parse_manifest_url(url: str) -> ManifestRef:
    """`<scheme>://<host>/v2/<name>/manifests/<tag or digest>` → its parts."""
    parts = urlsplit(url)
    match = _MANIFEST_PATH_RE.match(parts.path)
    if parts.scheme not in ("http", "https") or not parts.netloc or not match:
        raise ManifestError(
            f"url {url!r} is not a manifest URL (<scheme>://<host>/v2/<name>/manifests/<reference>)"
        )
    name, reference = match.group(1), match.group(2)
    if not _NAME_RE.match(name):
        raise ManifestError(f"invalid repository name {name!r}")
    if not (_TAG_RE.match(reference) or is_digest(reference)):
        raise ManifestError(f"invalid tag or digest {reference!r}")
    return ManifestRef(parts.scheme, parts.netloc, name, reference)


def parse_image_reference(text: str, *, insecure: bool = False) -> ManifestRef:
    """`[host/]name[:tag][@digest]` the way Docker reads it (seed 002's image `url`); a full
    manifest URL is accepted too. Plain HTTP for loopback hosts and insecure registries."""
    if text.startswith(("http://", "https://")):
        return parse_manifest_url(text)
    rest, _, digest = text.partition("@")
    first, slash, remainder = rest.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        registry, path = first, remainder
    else:
        registry, path = "registry-1.docker.io", rest
        if "/" not in path:
            path = f"library/{path}"
    name, _, tag = path.rpartition(":") if ":" in path else (path, "", "")
    if not _HOST_RE.match(registry):
        raise ManifestError(f"invalid registry host {registry!r}")
    if not _NAME_RE.match(name):
        raise ManifestError(f"invalid image name {name!r} in {text!r}")
    reference = digest or tag or "latest"
    if not (is_digest(reference) or _TAG_RE.match(reference)):
        raise ManifestError(f"invalid tag or digest {reference!r} in {text!r}")
    scheme = "http" if insecure or _is_loopback(registry) else "https"
    return ManifestRef(scheme, registry, name, reference)


def parse_manifest(content_type: str, body: bytes) -> Manifest:
    """The blobs or children of a manifest; the Content-Type decides, else the body does."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ManifestError(f"manifest is not valid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise ManifestError("manifest is not a JSON object")
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type not in _INDEX_TYPES | _IMAGE_TYPES | _SCHEMA1_TYPES:
        media_type = str(doc.get("mediaType") or "")
    if media_type not in _INDEX_TYPES | _IMAGE_TYPES | _SCHEMA1_TYPES:
        if doc.get("schemaVersion") == 1:
            media_type = DOCKER_SCHEMA1
        elif "manifests" in doc:
            media_type = OCI_INDEX
        elif "layers" in doc:
            media_type = OCI_MANIFEST
        else:
            raise ManifestError(f"unknown manifest type {content_type!r}")
    if media_type in _SCHEMA1_TYPES:
        layers = _list(doc, "fsLayers")
        sums = [_digest(layer, "blobSum") for layer in layers]
        # Schema 1 repeats the empty layer and lists layers newest first.
        unique = tuple(Descriptor(d) for d in dict.fromkeys(reversed(sums)))
        return Manifest(media_type, blobs=unique)
    if media_type in _INDEX_TYPES:
        children = tuple(
            Descriptor(_digest(m, "digest"), str(m.get("mediaType", "")), _size(m), _platform(m))
            for m in _list(doc, "manifests")
        )
        return Manifest(media_type, children=children)
    config = doc.get("config")
    if not isinstance(config, dict):
        raise ManifestError("image manifest has no config descriptor")
    blobs = [Descriptor(_digest(config, "digest"), str(config.get("mediaType", "")), _size(config))]
    for layer in _list(doc, "layers"):
        kind = str(layer.get("mediaType", ""))
        if not kind.startswith(_FOREIGN):
            blobs.append(Descriptor(_digest(layer, "digest"), kind, _size(layer)))
    return Manifest(media_type, blobs=tuple(dict.fromkeys(blobs)))


def host_platform() -> str:
    """The supernode's own platform in OCI terms, the default choice in an index."""
    system = "linux" if sys.platform.startswith("linux") else sys.platform
    machine = host.machine().lower()
    arch = _ARCH.get(machine, machine)
    variant = {"armv7l": "/v7", "armv6l": "/v6"}.get(machine, "")
    return f"{system}/{arch}{variant}"


def select_children(children: tuple[Descriptor, ...], want: str) -> tuple[Descriptor, ...]:
    """Index entries for platform `want` ("all" = every real platform, not attestations)."""
    if want == "all":
        return tuple(c for c in children if c.platform != "unknown/unknown")
    os_, _, rest = want.partition("/")
    arch, _, variant = rest.partition("/")
    chosen = []
    for child in children:
        c_os, _, c_rest = child.platform.partition("/")
        c_arch, _, c_variant = c_rest.partition("/")
        if (
            c_os == os_
            and c_arch == arch
            and (not variant or not c_variant or variant == c_variant)
        ):
            chosen.append(child)
    return tuple(chosen)


def valid_platform(value: str) -> bool:
    return value in ("", "all") or bool(re.match(r"^[a-z0-9]+/[a-z0-9_]+(/[a-z0-9]+)?$", value))


def _is_loopback(registry: str) -> bool:
    hostname = urlsplit(f"//{registry}").hostname or ""
    if hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def _list(doc: dict[str, Any], key: str) -> list[dict[str, Any]]:
    value = doc.get(key)
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ManifestError(f"manifest field {key!r} is not a list of objects")
    return value


def _digest(item: dict[str, Any], key: str) -> str:
    value = item.get(key)
    if not isinstance(value, str) or not is_digest(value):
        raise ManifestError(f"manifest holds an invalid digest {value!r}")
    return value


def _size(item: dict[str, Any]) -> int:
    value = item.get("size")
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else -1


def _platform(item: dict[str, Any]) -> str:
    spec = item.get("platform")
    if not isinstance(spec, dict):
        return ""
    text = f"{spec.get('os', '')}/{spec.get('architecture', '')}"
    return f"{text}/{spec['variant']}" if spec.get("variant") else text
