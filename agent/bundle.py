"""A revision's bundle as the agent receives it, and the checks it makes before applying it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

# The Istio kinds Canopy manages, each with the apiVersions the agent accepts for it.
_NETWORKING = frozenset(
    {"networking.istio.io/v1", "networking.istio.io/v1beta1", "networking.istio.io/v1alpha3"}
)
_SECURITY = frozenset({"security.istio.io/v1", "security.istio.io/v1beta1"})
_TELEMETRY = frozenset({"telemetry.istio.io/v1", "telemetry.istio.io/v1alpha1"})
KNOWN_KINDS: dict[str, frozenset[str]] = {
    "VirtualService": _NETWORKING,
    "DestinationRule": _NETWORKING,
    "Gateway": _NETWORKING,
    "ServiceEntry": _NETWORKING,
    "Sidecar": _NETWORKING,
    "EnvoyFilter": frozenset({"networking.istio.io/v1alpha3"}),
    "PeerAuthentication": _SECURITY,
    "RequestAuthentication": _SECURITY,
    "AuthorizationPolicy": _SECURITY,
    "Telemetry": _TELEMETRY,
}

# Kubernetes object names and namespaces (DNS-1123 subdomain / label). Checking them also keeps
# a hostile or broken bundle from naming a path outside the agent's directory.
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
DEFAULT_NAMESPACE = "default"


class BundleError(Exception):
    """The bundle cannot be applied; ``resource`` names the failing one (``kind/ns/name``) when
    there is one, ``path`` the field inside it."""

    def __init__(self, message: str, *, resource: str | None = None, path: str | None = None):
        super().__init__(message)
        self.message = message
        self.resource = resource
        self.path = path

    def detail(self) -> dict[str, str]:
        out = {"message": self.message}
        if self.resource:
            out["resource"] = self.resource
        if self.path:
            out["path"] = self.path
        return out


@dataclass(frozen=True)
class Resource:
    api_version: str
    kind: str
    namespace: str
    name: str
    body: dict[str, Any]

    @property
    def key(self) -> str:
        return f"{self.kind}/{self.namespace}/{self.name}"

    @property
    def relative_path(self) -> str:
        return f"{self.kind}/{self.namespace}/{self.name}.yaml"

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.body, sort_keys=False, default_flow_style=False)


@dataclass(frozen=True)
class Bundle:
    revision: int
    digest: str
    resources: tuple[Resource, ...]
    cluster: str = ""


def _resource(index: int, raw: Any) -> Resource:
    where = f"resources[{index}]"
    if not isinstance(raw, dict):
        raise BundleError(f"{where} is not a mapping", path=where)
    kind = raw.get("kind")
    api_version = raw.get("apiVersion")
    metadata = raw.get("metadata") if isinstance(raw.get("metadata"), dict) else {}
    name = metadata.get("name")
    namespace = metadata.get("namespace") or DEFAULT_NAMESPACE
    label = f"{kind}/{namespace}/{name}"
    if kind not in KNOWN_KINDS:
        raise BundleError(f"unknown kind {kind!r}", resource=label, path="kind")
    if api_version not in KNOWN_KINDS[kind]:
        raise BundleError(
            f"unknown apiVersion {api_version!r} for {kind}", resource=label, path="apiVersion"
        )
    if not isinstance(name, str) or not _NAME.match(name):
        raise BundleError(f"invalid name {name!r}", resource=label, path="metadata.name")
    if not isinstance(namespace, str) or not _NAMESPACE.match(namespace):
        raise BundleError(
            f"invalid namespace {namespace!r}", resource=label, path="metadata.namespace"
        )
    resource = Resource(api_version, kind, namespace, name, raw)
    # What is written must read back as the same object: YAML well-formed and lossless.
    try:
        if yaml.safe_load(resource.to_yaml()) != raw:
            raise BundleError("does not survive a YAML round trip", resource=resource.key)
    except yaml.YAMLError as exc:
        raise BundleError(f"YAML error: {exc}", resource=resource.key) from exc
    return resource


def bundle_from_json(document: Any, *, etag_digest: str | None = None) -> Bundle:
    """The bundle of a ``GET /api/v1/agent/config`` answer, checked; BundleError otherwise."""
    if not isinstance(document, dict):
        raise BundleError("the answer is not a JSON object")
    revision = document.get("revision")
    digest = document.get("digest")
    resources = document.get("resources")
    if not isinstance(revision, int) or revision < 1:
        raise BundleError(f"invalid revision {revision!r}")
    if not isinstance(digest, str) or not digest:
        raise BundleError(f"invalid digest {digest!r}")
    if etag_digest is not None and etag_digest != digest:
        raise BundleError(f"the ETag {etag_digest!r} does not match the bundle's digest {digest!r}")
    if not isinstance(resources, list):
        raise BundleError("resources is not a list")
    parsed = tuple(_resource(i, raw) for i, raw in enumerate(resources))
    seen: set[str] = set()
    for resource in parsed:
        if resource.key in seen:
            raise BundleError("the same resource twice in one bundle", resource=resource.key)
        seen.add(resource.key)
    return Bundle(revision, digest, parsed, str(document.get("cluster") or ""))
