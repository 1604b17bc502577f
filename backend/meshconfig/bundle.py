"""The canonical bundle: a revision's resources in one order and one form, and its digest.

Pure functions, no Django. A resource's identity is (kind, namespace, name); its canonical form
keeps ``apiVersion``, ``kind``, ``metadata`` (``name``, ``namespace``, ``labels``,
``annotations``) and ``spec``, and drops what a cluster adds (``status``, ``uid``,
``resourceVersion``, ``managedFields``, …). A resource without a namespace gets
``DEFAULT_NAMESPACE``. The bundle's digest is the SHA-256 (hex) of its canonical JSON (keys
sorted, no spaces, UTF-8), so two revisions with the same resources have the same digest, and
the empty bundle has ``EMPTY_DIGEST``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable

DEFAULT_NAMESPACE = "default"
_KEPT_METADATA = ("name", "namespace", "labels", "annotations")


def resource_key(resource: dict) -> tuple[str, str, str]:
    """(kind, namespace, name) of a resource (canonical or not)."""
    meta = resource.get("metadata") or {}
    if not isinstance(meta, dict):
        meta = {}
    return (
        str(resource.get("kind") or ""),
        str(meta.get("namespace") or DEFAULT_NAMESPACE),
        str(meta.get("name") or ""),
    )


def canonical_resource(resource: dict) -> dict:
    meta = resource.get("metadata") or {}
    if not isinstance(meta, dict):
        meta = {}
    out_meta = {k: meta[k] for k in _KEPT_METADATA if meta.get(k) not in (None, {}, "")}
    out_meta.setdefault("namespace", DEFAULT_NAMESPACE)
    out = {
        "apiVersion": resource.get("apiVersion"),
        "kind": resource.get("kind"),
        "metadata": out_meta,
    }
    if "spec" in resource:
        out["spec"] = resource["spec"]
    return out


def canonical_bundle(resources: Iterable[dict]) -> list[dict]:
    """The resources in canonical form, ordered by (kind, namespace, name)."""
    return sorted((canonical_resource(r) for r in resources), key=resource_key)


def canonical_json(value) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def bundle_digest(canonical: list[dict]) -> str:
    """SHA-256 (hex) of a bundle already in canonical form."""
    return hashlib.sha256(canonical_json(canonical)).hexdigest()


EMPTY_DIGEST = bundle_digest([])
