"""Request bodies of the user API: a multi-document YAML stream or ``{"resources": [...]}``.

Bounded before work starts: at most MAX_BODY_BYTES, MAX_DOCUMENTS resources; YAML anchors and
aliases are refused (an alias bomb would expand when the bundle is canonicalised)."""

from __future__ import annotations

import math

import yaml

MAX_BODY_BYTES = 2 * 1024 * 1024
MAX_DOCUMENTS = 1000


class BodyError(ValueError):
    """A body that cannot be read as resources (a 400; the message says why and where)."""


class _Loader(yaml.SafeLoader):
    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.YAMLError(
                f"line {event.start_mark.line + 1}: YAML aliases are not accepted, write the "
                "value out"
            )
        return super().compose_node(parent, index)


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
            out.append(doc)
            if len(out) > MAX_DOCUMENTS:
                raise BodyError(f"at most {MAX_DOCUMENTS} resources")
    except yaml.YAMLError as exc:
        raise BodyError(f"not valid YAML: {exc}") from exc
    return _json_safe(out)


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


def _json_safe(value):
    """YAML has dates and non-string keys that JSON has not: turn them into strings."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)
