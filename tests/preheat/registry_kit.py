"""A real `docker-registry` on 127.0.0.1 for the preheat tests: certificates, tokens, pushes."""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from tests.ports import free_port

REGISTRY_BIN = "docker-registry"
SCHEMA2 = "application/vnd.docker.distribution.manifest.v2+json"
SCHEMA2_CONFIG = "application/vnd.docker.container.image.v1+json"
SCHEMA2_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
SERVICE = "test-registry"
ISSUER = "test-issuer"


def registry_binary() -> str:
    """The binary, or a skip; under CI=true a missing registry fails the run instead."""
    path = shutil.which(REGISTRY_BIN)
    if path is None:
        message = "docker-registry is not installed (apt-get install docker-registry)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# ---- keys, certificates, tokens --------------------------------------------------------


@dataclass
class Pki:
    """A CA, a server certificate for 127.0.0.1 it signed, and an RSA token-signing cert."""

    ca_pem: bytes
    server_cert_pem: bytes
    server_key_pem: bytes
    token_key: rsa.RSAPrivateKey
    token_cert_der: bytes
    token_cert_pem: bytes


def make_pki() -> Pki:
    now = datetime.datetime.now(datetime.UTC)

    def build(subject: str, key: Any, issuer: x509.Name | None, signer: Any, ca: bool, ip: bool):
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(issuer or name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if ip:
            alt = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
            builder = builder.add_extension(alt, critical=False)
        return builder.sign(signer, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = build("preheat test CA", ca_key, None, ca_key, True, False)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = build("127.0.0.1", server_key, ca.subject, ca_key, False, True)
    token_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = build("token signer", token_key, None, token_key, True, False)
    pem = serialization.Encoding.PEM
    return Pki(
        ca_pem=ca.public_bytes(pem),
        server_cert_pem=server.public_bytes(pem),
        server_key_pem=server_key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
        token_key=token_key,
        token_cert_der=token.public_bytes(serialization.Encoding.DER),
        token_cert_pem=token.public_bytes(pem),
    )


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def mint_token(pki: Pki, repository: str, actions: list[str], lifetime: int = 600) -> str:
    """An RS256 JWT the registry's `auth: token:` accepts (x5c chain to the root bundle)."""
    now = int(time.time())
    header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(pki.token_cert_der).decode()]}
    claims = {
        "iss": ISSUER,
        "sub": "preheat-test",
        "aud": SERVICE,
        "exp": now + lifetime,
        "nbf": now - 10,
        "iat": now,
        "jti": uuid.uuid4().hex,
        "access": [{"type": "repository", "name": repository, "actions": actions}],
    }
    signing_input = (
        _b64url(json.dumps(header).encode()) + "." + _b64url(json.dumps(claims).encode())
    )
    signature = pki.token_key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return signing_input + "." + _b64url(signature)


# ---- the registry process --------------------------------------------------------------


@dataclass
class Registry:
    base: str  # http(s)://127.0.0.1:port
    root: Path  # storage root directory
    log_path: Path
    process: subprocess.Popen[bytes]
    push_token: dict[str, str] = field(default_factory=dict)  # repository → bearer token
    ca_file: str | None = None

    @property
    def host(self) -> str:
        return self.base.split("://", 1)[1]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_registry(
    workdir: Path,
    *,
    auth: dict[str, Any] | None = None,
    tls: Pki | None = None,
    redirect_base: str | None = None,
) -> Registry:
    binary = registry_binary()
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    http: dict[str, Any] = {"addr": f"127.0.0.1:{port}", "secret": uuid.uuid4().hex}
    if tls is not None:
        (workdir / "server.pem").write_bytes(tls.server_cert_pem + tls.ca_pem)
        (workdir / "server.key").write_bytes(tls.server_key_pem)
        http["tls"] = {
            "certificate": str(workdir / "server.pem"),
            "key": str(workdir / "server.key"),
        }
    config: dict[str, Any] = {
        "version": 0.1,
        "log": {"level": "info", "accesslog": {"disabled": False}},
        "storage": {
            "filesystem": {"rootdirectory": str(workdir / "data")},
            "delete": {"enabled": True},
        },
        "http": http,
    }
    if auth:
        config["auth"] = auth
    if redirect_base:
        config["middleware"] = {
            "storage": [{"name": "redirect", "options": {"baseurl": redirect_base}}]
        }
    config_path = workdir / "config.yml"
    config_path.write_text(json.dumps(config))  # JSON is YAML
    log_path = workdir / "registry.log"
    log_file = open(log_path, "wb")  # noqa: SIM115 - kept open for the process's life
    process = subprocess.Popen(
        [binary, "serve", str(config_path)], stdout=log_file, stderr=log_file
    )
    scheme = "https" if tls else "http"
    registry = Registry(f"{scheme}://127.0.0.1:{port}", workdir / "data", log_path, process)
    if tls is not None:
        registry.ca_file = str(workdir / "ca.pem")
        (workdir / "ca.pem").write_bytes(tls.ca_pem)
    for _ in range(100):
        if process.poll() is not None:
            raise RuntimeError(f"docker-registry exited: {registry.log_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return registry
        except OSError:
            time.sleep(0.05)
    registry.stop()
    raise RuntimeError("docker-registry did not start listening")


# ---- pushing images over the registry HTTP API ------------------------------------------


def _request(
    registry: Registry,
    method: str,
    url: str,
    repository: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    import ssl

    all_headers = dict(headers or {})
    token = registry.push_token.get(repository)
    if token:
        all_headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(
        url, data=body if method in ("POST", "PUT") else None, method=method, headers=all_headers
    )
    context = ssl.create_default_context(cafile=registry.ca_file) if registry.ca_file else None
    try:
        with urllib.request.urlopen(req, timeout=10, context=context) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def push_blob(registry: Registry, repository: str, data: bytes) -> str:
    digest = sha256_digest(data)
    base = f"{registry.base}/v2/{repository}/blobs/uploads/"
    status, headers, body = _request(registry, "POST", base, repository)
    assert status == 202, (status, body)
    location = headers["Location"]
    if location.startswith("/"):
        location = registry.base + location
    sep = "&" if "?" in location else "?"
    status, _, body = _request(
        registry,
        "PUT",
        f"{location}{sep}digest={digest}",
        repository,
        data,
        {"Content-Type": "application/octet-stream"},
    )
    assert status == 201, (status, body)
    return digest


def push_manifest(
    registry: Registry, repository: str, reference: str, media_type: str, manifest: dict[str, Any]
) -> tuple[str, bytes]:
    body = json.dumps(manifest, indent=2).encode()
    url = f"{registry.base}/v2/{repository}/manifests/{reference}"
    status, _, reply = _request(
        registry, "PUT", url, repository, body, {"Content-Type": media_type}
    )
    assert status == 201, (status, reply)
    return sha256_digest(body), body


@dataclass
class PushedImage:
    repository: str
    tag: str
    manifest_digest: str
    blobs: dict[str, bytes]  # digest → content, config first
    platforms: dict[str, list[str]] = field(default_factory=dict)  # platform → its blob digests

    def manifest_url(self, registry: Registry, reference: str | None = None) -> str:
        return f"{registry.base}/v2/{self.repository}/manifests/{reference or self.tag}"


def _image_parts(seed: str, layers: int, size: int) -> tuple[bytes, list[bytes]]:
    contents = [
        hashlib.sha256(f"{seed}-{i}".encode()).digest() * (size // 32) for i in range(layers)
    ]
    config = json.dumps({"architecture": "amd64", "os": "linux", "seed": seed}).encode()
    return config, contents


def _push_image(
    registry: Registry,
    repository: str,
    reference: str | None,
    seed: str,
    layers: int,
    size: int,
    media: tuple[str, str, str],
) -> tuple[str, bytes, dict[str, bytes]]:
    """Push a config and its layers, then a manifest naming them under `reference` (None: a
    tag made from the config digest); `media` = (manifest, config, layer) media types.
    → (manifest digest, manifest body, blobs with the config first)."""
    manifest_type, config_type, layer_type = media
    config, contents = _image_parts(seed, layers, size)
    blobs = {push_blob(registry, repository, config): config}
    for content in contents:
        blobs[push_blob(registry, repository, content)] = content
    digests = list(blobs)
    manifest = {
        "schemaVersion": 2,
        "mediaType": manifest_type,
        "config": {"mediaType": config_type, "size": len(config), "digest": digests[0]},
        "layers": [
            {"mediaType": layer_type, "size": len(blobs[d]), "digest": d} for d in digests[1:]
        ],
    }
    reference = reference or digests[0].replace(":", "-")[:40]
    digest, body = push_manifest(registry, repository, reference, manifest_type, manifest)
    return digest, body, blobs


def push_schema2(
    registry: Registry,
    repository: str,
    tag: str,
    *,
    layers: int = 3,
    size: int = 48 * 1024,
    seed: str = "s2",
) -> PushedImage:
    media = (SCHEMA2, SCHEMA2_CONFIG, SCHEMA2_LAYER)
    digest, _, blobs = _push_image(registry, repository, tag, seed, layers, size, media)
    return PushedImage(repository, tag, digest, blobs)


def push_oci_index(
    registry: Registry,
    repository: str,
    tag: str,
    platforms: tuple[str, ...] = ("linux/amd64", "linux/arm64"),
) -> PushedImage:
    all_blobs: dict[str, bytes] = {}
    entries = []
    per_platform: dict[str, list[str]] = {}
    for platform in platforms:
        media = (OCI_MANIFEST, OCI_CONFIG, OCI_LAYER)
        digest, body, blobs = _push_image(
            registry, repository, None, f"oci-{platform}", 2, 16 * 1024, media
        )
        os_, arch = platform.split("/")[:2]
        entries.append(
            {
                "mediaType": OCI_MANIFEST,
                "digest": digest,
                "size": len(body),
                "platform": {"os": os_, "architecture": arch},
            }
        )
        all_blobs.update(blobs)
        per_platform[platform] = list(blobs)
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
    digest, _ = push_manifest(registry, repository, tag, OCI_INDEX, index)
    return PushedImage(repository, tag, digest, all_blobs, per_platform)
