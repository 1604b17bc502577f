"""Structural validation against Istio's own CRD schemas, as generated into pydantic models by
``cloudcoil-models-istio`` (one module per API group and version). The models ignore unknown
fields; Kubernetes' strict field validation (kubectl's default) refuses them, so this module
walks the same models to report them too. Everything is reported as IST0106
(SchemaValidationError, what istioctl and the validating webhook say) at the field's slash
path."""

from __future__ import annotations

import importlib
import re
import types
import typing
from functools import cache

import pydantic

from backend.meshconfig.findings import ERROR, Finding, finding

_GROUPS = {
    "networking.istio.io": "networking",
    "security.istio.io": "security",
    "telemetry.istio.io": "telemetry",
}

# kind -> the apiVersions Istio serves it under
KINDS: dict[str, tuple[str, ...]] = {
    "VirtualService": (
        "networking.istio.io/v1",
        "networking.istio.io/v1beta1",
        "networking.istio.io/v1alpha3",
    ),
    "DestinationRule": (
        "networking.istio.io/v1",
        "networking.istio.io/v1beta1",
        "networking.istio.io/v1alpha3",
    ),
    "Gateway": (
        "networking.istio.io/v1",
        "networking.istio.io/v1beta1",
        "networking.istio.io/v1alpha3",
    ),
    "ServiceEntry": (
        "networking.istio.io/v1",
        "networking.istio.io/v1beta1",
        "networking.istio.io/v1alpha3",
    ),
    "Sidecar": (
        "networking.istio.io/v1",
        "networking.istio.io/v1beta1",
        "networking.istio.io/v1alpha3",
    ),
    "EnvoyFilter": ("networking.istio.io/v1alpha3",),
    "PeerAuthentication": ("security.istio.io/v1", "security.istio.io/v1beta1"),
    "RequestAuthentication": ("security.istio.io/v1", "security.istio.io/v1beta1"),
    "AuthorizationPolicy": ("security.istio.io/v1", "security.istio.io/v1beta1"),
    "Telemetry": ("telemetry.istio.io/v1", "telemetry.istio.io/v1alpha1"),
}

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
MAX_ERRORS_PER_RESOURCE = 20


@cache
def resource_model(kind: str, api_version: str) -> type[pydantic.BaseModel]:
    group, _, version = api_version.partition("/")
    module = importlib.import_module(f"cloudcoil.models.istio.{_GROUPS[group]}.{version}")
    return getattr(module, kind)


def slash_path(loc: typing.Iterable) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("/" if out else "") + str(part)
    return out


def _schema(resource: dict, path: str, message: str) -> Finding:
    return finding(resource, "IST0106", ERROR, path, message)


def structural_findings(resource: dict) -> list[Finding]:
    """Kind, apiVersion, metadata and the spec against Istio's schema."""
    if not isinstance(resource, dict):
        return [
            Finding("IST0106", ERROR, "", "", "", "", "a resource must be a mapping (an object)")
        ]
    kind, api_version = resource.get("kind"), resource.get("apiVersion")
    if kind not in KINDS:
        return [
            finding(
                resource,
                "CNP0001",
                ERROR,
                "kind",
                f"unknown kind {kind!r}: use one of {', '.join(sorted(KINDS))}",
            )
        ]
    if api_version not in KINDS[kind]:
        return [
            finding(
                resource,
                "CNP0002",
                ERROR,
                "apiVersion",
                f"{kind} is served as {', '.join(KINDS[kind])}, not {api_version!r}",
            )
        ]
    out = _metadata_findings(resource)
    spec = resource.get("spec")
    if spec is None:
        out.append(_schema(resource, "spec", "spec is required"))
        return out
    model = resource_model(kind, api_version)
    body = {"apiVersion": api_version, "kind": kind, "spec": spec}
    try:
        model.model_validate(body)
    except pydantic.ValidationError as exc:
        for loc, msg in _errors(exc)[:MAX_ERRORS_PER_RESOURCE]:
            out.append(_schema(resource, slash_path(loc), msg))
    spec_type = model.model_fields["spec"].annotation
    for loc in _unknown_fields(spec_type, spec, ("spec",))[:MAX_ERRORS_PER_RESOURCE]:
        out.append(_schema(resource, slash_path(loc), f"unknown field {loc[-1]!r}"))
    return out


_TAG = re.compile(r"^[A-Z][A-Za-z0-9]*$|[\[(]")


def _errors(exc: pydantic.ValidationError) -> list[tuple[tuple, str]]:
    """(field path, message) of each error. A oneOf in Istio's schema is a union of models
    here: pydantic reports every alternative (its loc carries the alternative's name), so only
    the alternative that came closest (fewest errors) is kept, and the names are dropped."""
    groups: dict[tuple, dict[str, list]] = {}
    plain: list[tuple[tuple, str]] = []
    for error in exc.errors():
        loc = tuple(error["loc"])
        tag_at = next((i for i, p in enumerate(loc) if isinstance(p, str) and _TAG.search(p)), None)
        if tag_at is None:
            plain.append((loc, error["msg"]))
            continue
        rest = tuple(p for p in loc[tag_at + 1 :] if not (isinstance(p, str) and _TAG.search(p)))
        groups.setdefault(loc[:tag_at], {}).setdefault(loc[tag_at], []).append(
            ((*loc[:tag_at], *rest), error["msg"])
        )
    for alternatives in groups.values():
        plain.extend(min(alternatives.values(), key=len))
    seen, out = set(), []
    for item in plain:
        if item not in seen:
            seen.add(item)
            out.append(item)
    return out


def _metadata_findings(resource: dict) -> list[Finding]:
    meta = resource.get("metadata")
    if not isinstance(meta, dict):
        return [_schema(resource, "metadata", "metadata with a name is required")]
    out = []
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        out.append(_schema(resource, "metadata/name", "metadata.name is required"))
    elif len(name) > 253 or not _NAME.match(name):
        out.append(
            _schema(resource, "metadata/name", f"{name!r} is not a valid name (RFC 1123 subdomain)")
        )
    namespace = meta.get("namespace")
    if namespace is not None and (
        not isinstance(namespace, str) or len(namespace) > 63 or not _NAMESPACE.match(namespace)
    ):
        out.append(
            _schema(resource, "metadata/namespace", f"{namespace!r} is not a valid namespace")
        )
    for key in ("labels", "annotations"):
        value = meta.get(key)
        if value is not None and (
            not isinstance(value, dict)
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())
        ):
            out.append(_schema(resource, f"metadata/{key}", f"{key} map strings to strings"))
    return out


# ---- unknown fields: walk the input along the models' annotations ----------------------------


def _strip(annotation):
    """Drop Optional/Annotated wrappers: the annotations of the underlying types."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _strip(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        out = []
        for arg in typing.get_args(annotation):
            if arg is not type(None):
                out.extend(_strip(arg))
        return out
    return [annotation]


def _is_model(tp) -> bool:
    return isinstance(tp, type) and issubclass(tp, pydantic.BaseModel)


@cache
def _fields(model: type[pydantic.BaseModel]) -> dict[str, object]:
    out = {}
    for name, info in model.model_fields.items():
        out[info.alias or name] = info.annotation
        out.setdefault(name, info.annotation)
    return out


def _unknown_fields(annotation, value, loc: tuple) -> list[tuple]:
    candidates = _strip(annotation)
    best: list[tuple] | None = None
    for tp in candidates:
        found = _unknown_in(tp, value, loc)
        if found is None:
            continue
        if best is None or len(found) < len(best):
            best = found
        if not best:
            return []
    return best or []


def _unknown_in(tp, value, loc: tuple) -> list[tuple] | None:
    """Unknown keys of ``value`` read as ``tp``; None when ``value`` is not of that shape."""
    origin = typing.get_origin(tp)
    if _is_model(tp):
        if issubclass(tp, pydantic.RootModel):
            return _unknown_fields(tp.model_fields["root"].annotation, value, loc)
        if not isinstance(value, dict):
            return None
        known = _fields(tp)
        out = []
        for key, sub in value.items():
            if key not in known:
                out.append((*loc, key))
            else:
                out.extend(_unknown_fields(known[key], sub, (*loc, key)))
        return out
    if origin in (list, typing.List):  # noqa: UP006
        if not isinstance(value, list):
            return None
        (item,) = typing.get_args(tp) or (typing.Any,)
        out = []
        for i, sub in enumerate(value):
            out.extend(_unknown_fields(item, sub, (*loc, i)))
        return out
    if origin in (dict, typing.Dict):  # noqa: UP006
        if not isinstance(value, dict):
            return None
        args = typing.get_args(tp)
        item = args[1] if len(args) == 2 else typing.Any
        out = []
        for key, sub in value.items():
            out.extend(_unknown_fields(item, sub, (*loc, key)))
        return out
    return []  # scalars, Any, Literal: nothing below to check
