"""Image expansion against a real docker-registry: schema2, OCI index, token auth, TLS."""

from __future__ import annotations

import pytest

from supernode.preheat.manifests import host_platform, parse_manifest_url
from supernode.preheat.registry import ExpandRequest, RegistryError, expand_image
from tests.preheat.conftest import TOKEN_PASSWORD, TOKEN_USER, PlainSetup, TokenSetup
from tests.preheat.registry_kit import Registry, mint_token, sha256_digest


def _request(url: str, **kwargs) -> ExpandRequest:
    return ExpandRequest(parse_manifest_url(url), **kwargs)


async def test_schema2_lists_config_and_every_layer(plain: PlainSetup):
    expansion = await expand_image(_request(plain.image.manifest_url(plain.registry)))
    assert [b.digest for b in expansion.blobs] == list(plain.image.blobs)
    assert expansion.manifest_digest == plain.image.manifest_digest
    assert expansion.authorization == ""
    assert [b.size for b in expansion.blobs] == [len(v) for v in plain.image.blobs.values()]


async def test_manifest_by_digest_is_verified(plain: PlainSetup):
    url = plain.image.manifest_url(plain.registry, plain.image.manifest_digest)
    expansion = await expand_image(_request(url))
    assert expansion.manifest_digest == plain.image.manifest_digest
    wrong = plain.image.manifest_url(plain.registry, sha256_digest(b"other"))
    with pytest.raises(RegistryError, match="HTTP 404"):
        await expand_image(_request(wrong))


@pytest.mark.parametrize("platform", ["linux/amd64", "linux/arm64"])
async def test_oci_index_picks_the_platform(plain: PlainSetup, platform: str):
    expansion = await expand_image(
        _request(plain.index.manifest_url(plain.registry), platform=platform)
    )
    assert [b.digest for b in expansion.blobs] == plain.index.platforms[platform]
    assert {b.platform for b in expansion.blobs} == {platform}
    assert expansion.manifest_digest == plain.index.manifest_digest


async def test_oci_index_default_is_the_hosts_platform(plain: PlainSetup):
    url = plain.index.manifest_url(plain.registry)
    if host_platform() not in plain.index.platforms:
        with pytest.raises(RegistryError, match="no matching manifest for platform"):
            await expand_image(_request(url))
        return
    expansion = await expand_image(_request(url))
    assert [b.digest for b in expansion.blobs] == plain.index.platforms[host_platform()]


async def test_oci_index_all_platforms_and_unknown_platform(plain: PlainSetup):
    url = plain.index.manifest_url(plain.registry)
    expansion = await expand_image(_request(url, platform="all"))
    assert {b.digest for b in expansion.blobs} == set(plain.index.blobs)
    with pytest.raises(RegistryError, match="no matching manifest for platform linux/s390x"):
        await expand_image(_request(url, platform="linux/s390x"))


async def test_token_exchange_with_basic_credentials(token_registry: TokenSetup):
    before = len(token_registry.tokens.requests)
    url = token_registry.image.manifest_url(token_registry.registry)
    expansion = await expand_image(_request(url, username=TOKEN_USER, password=TOKEN_PASSWORD))
    assert [b.digest for b in expansion.blobs] == list(token_registry.image.blobs)
    assert expansion.authorization.startswith("Bearer ")
    asked = token_registry.tokens.requests[before:]
    assert len(asked) == 1
    assert (
        "scope=repository%3Asecret%2Fapp%3Apull" in asked[0]
        or "repository:secret/app:pull" in asked[0]
    )


async def test_token_exchange_refused_without_credentials(token_registry: TokenSetup):
    url = token_registry.image.manifest_url(token_registry.registry)
    with pytest.raises(RegistryError, match=r"token request to .* failed: HTTP 401"):
        await expand_image(_request(url))


async def test_given_authorization_is_used_as_is(token_registry: TokenSetup, pki):
    before = len(token_registry.tokens.requests)
    token = mint_token(pki, "secret/app", ["pull"])
    url = token_registry.image.manifest_url(token_registry.registry)
    headers = (("Authorization", f"Bearer {token}"),)
    expansion = await expand_image(_request(url, headers=headers))
    assert expansion.authorization == f"Bearer {token}"
    assert len(token_registry.tokens.requests) == before  # no ping, no exchange
    bad = (("Authorization", "Bearer not-a-token"),)
    with pytest.raises(RegistryError, match="HTTP 401"):
        await expand_image(_request(url, headers=bad))


async def test_tls_needs_the_ca_or_insecure(tls_registry: Registry, pki):
    url = f"{tls_registry.base}/v2/tls/app/manifests/v1"
    with pytest.raises(RegistryError, match=r"(?i)certificate"):
        await expand_image(_request(url))
    trusted = await expand_image(_request(url, root_cas=(pki.ca_pem,)))
    assert len(trusted.blobs) == 2
    insecure = await expand_image(_request(url, insecure=True))
    assert insecure.blobs == trusted.blobs


# ---- odd registries: an in-test stub for what a real registry will not serve ---------------


async def test_schema1_with_basic_auth(stub):
    url = f"http://127.0.0.1:{stub.port}/v2/s1/app/manifests/v1"
    expansion = await expand_image(_request(url, username="u", password="p"))
    assert [b.digest for b in expansion.blobs] == [stub.digests[1], stub.digests[0]]
    assert expansion.authorization == "Basic dTpw"
    with pytest.raises(RegistryError, match="Basic authentication"):
        await expand_image(_request(url))


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("broken/app", "HTTP 500 boom"),
        ("garbage/app", "not valid JSON"),
        ("weird/app", "unusable challenge"),
        ("missing/app", "HTTP 404"),
    ],
)
async def test_registry_failures_are_clear(stub, name: str, reason: str):
    url = f"http://127.0.0.1:{stub.port}/v2/{name}/manifests/v1"
    with pytest.raises(RegistryError, match=reason):
        await expand_image(_request(url))


async def test_unreachable_registry():
    from tests.preheat.registry_kit import free_port

    url = f"http://127.0.0.1:{free_port()}/v2/gone/app/manifests/v1"
    with pytest.raises(RegistryError, match="cannot reach registry"):
        await expand_image(_request(url))
