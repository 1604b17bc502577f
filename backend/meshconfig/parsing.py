"""Request bodies of the user API: a multi-document YAML stream or ``{"resources": [...]}``.

Bounded before work starts: at most MAX_BODY_BYTES, MAX_DOCUMENTS resources; YAML aliases of
mappings and lists are refused (an alias bomb would expand when the bundle is canonicalised)."""

from __future__ import annotations

import math

import yaml

MAX_BODY_BYTES = 2 * 1024 * 1024
MAX_DOCUMENTS = 1000


class BodyError(ValueError):
    """A body that cannot be read as resources (a 400; the message says why and where)."""


# libyaml's loader when PyYAML was built with it (the wheels are): ~20x the pure-Python one.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _AliasError(ValueError):
    pass


def resources_from_yaml(body: bytes | str) -> list[dict]:
    if len(body) > MAX_BODY_BYTES:
        raise BodyError(f"the body is over {MAX_BODY_BYTES} bytes")
    if isinstance(body, bytes):
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BodyError("the body is not UTF-8") from exc
    out = []
    try:
        for i, doc in enumerate(yaml.load_all(body, Loader=_Loader)):
            if doc is None:
                continue  # an empty document (a leading or trailing ---)
            if not isinstance(doc, dict):
                raise BodyError(f"document {i + 1} is not a mapping (a Kubernetes resource)")
            out.append(_json_safe(doc, set()))  # aliases stay within a document
            if len(out) > MAX_DOCUMENTS:
                raise BodyError(f"at most {MAX_DOCUMENTS} resources")
    except yaml.YAMLError as exc:
        raise BodyError(f"not valid YAML: {exc}") from exc
    except _AliasError as exc:
        raise BodyError("YAML anchors and aliases are not accepted: write the value out") from exc
    except BodyError:
        raise
    except (ValueError, RecursionError) as exc:
        # what the constructors raise past YAMLError: an integer of more digits than Python
        # converts (ValueError), a document nested deeper than the interpreter's stack
        raise BodyError(f"not valid YAML: {str(exc)[:200]}") from exc
    return out


def resources_from_json(data) -> list[dict]:
    if not isinstance(data, dict) or not isinstance(data.get("resources"), list):
        raise BodyError(
            'send {"resources": [...]} or a YAML stream (Content-Type: application/yaml)'
        )
    resources = data["resources"]
    if len(resources) > MAX_DOCUMENTS:
        raise BodyError(f"at most {MAX_DOCUMENTS} resources")
    for i, r in enumerate(resources):
        if not isinstance(r, dict):
            raise BodyError(f"resources[{i}] is not an object")
    return resources


def _json_safe(value, seen: set[int]):
    """YAML has dates and non-string keys that JSON has not: turn them into strings. A mapping
    or list met twice is an alias (the loader shares the object): refused before anything
    expands it."""
    if isinstance(value, dict | list):
        if id(value) in seen:
            raise _AliasError()
        seen.add(id(value))
    if isinstance(value, dict):
        return {str(k): _json_safe(v, seen) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v, seen) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)
