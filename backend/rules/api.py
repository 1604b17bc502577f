"""The rules HTTP APIs.

- Cortex/Mimir's ruler configuration API under ``/prometheus/config/v1/rules`` (what
  ``mimirtool rules`` and ``cortextool rules`` call): YAML in and out.
- Prometheus's ``/prometheus/api/v1/rules`` and ``/prometheus/api/v1/alerts``.
- ``/api/v1/alerting/targets``: where the org's alerts go, and how delivery is going.

Reads need ``metrics:read``; changes need ``rules:write``. Another org's groups are 404.
"""

from __future__ import annotations

import json

from django.http import HttpResponse
from rest_framework.parsers import BaseParser

from backend.metrics import promql
from backend.metrics.prometheus_api import PrometheusView, success
from backend.rules import notify, selectors, services
from backend.rules.rulefile import (
    MAX_FILE_BYTES,
    RuleFileError,
    group_parse,
    groups_parse,
    yaml_dump,
)
from backend.tenancy.api_base import OrgAPIView
from backend.tenancy.models import Scope

MAX_NAME_LENGTH = 256


class _RawParser(BaseParser):
    """Any body, as bytes: the views read YAML or JSON themselves."""

    media_type = "*/*"

    def parse(self, stream, media_type=None, parser_context=None):
        return stream.read() if stream is not None else b""


def _yaml(text: str, status: int = 200) -> HttpResponse:
    return HttpResponse(text, status=status, content_type="application/yaml")


def _ruler_json(status: int, error: str = "") -> HttpResponse:
    body = {
        "status": "error" if error else "success",
        "data": None,
        "errorType": "",
        "error": error,
    }
    if error:
        body["errorType"] = (
            "bad_data" if status == 400 else "not_found" if status == 404 else "server_error"
        )
    return HttpResponse(json.dumps(body), status=status, content_type="application/json")


def _text_error(message: str, status: int) -> HttpResponse:
    return HttpResponse(message + "\n", status=status, content_type="text/plain; charset=utf-8")


def _name_ok(value: str) -> bool:
    return 0 < len(value) <= MAX_NAME_LENGTH and "/" not in value


class RulerView(OrgAPIView):
    scopes = {
        "GET": [Scope.METRICS_READ],
        "POST": [Scope.RULES_WRITE],
        "DELETE": [Scope.RULES_WRITE],
    }
    parser_classes = [_RawParser]

    def get(self, request, namespace: str | None = None, group: str | None = None):
        groups = selectors.groups_list(org_id=self.org.pk, namespace=namespace, name=group)
        if not groups:
            return _text_error("no rule groups found", 404)
        if group is not None:
            return _yaml(yaml_dump(selectors.group_as_dict(groups[0])))
        return _yaml(selectors.namespaces_yaml(groups))

    def post(self, request, namespace: str | None = None, group: str | None = None):
        if namespace is None or group is not None:
            return _text_error("POST a rule group to /config/v1/rules/{namespace}", 405)
        if not _name_ok(namespace):
            return _text_error(
                f"invalid namespace name (1-{MAX_NAME_LENGTH} characters, no '/')", 400
            )
        length = int(request.META.get("CONTENT_LENGTH") or 0)
        if length > MAX_FILE_BYTES:
            return _text_error(f"rule group larger than {MAX_FILE_BYTES} bytes", 413)
        body = request.data if isinstance(request.data, bytes) else b""
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return _text_error("the body must be UTF-8 YAML", 400)
        try:
            # A whole rule file ("groups: [...]") replaces the namespace; one group is saved
            # alone (what mimirtool sends).
            stripped = text.lstrip()
            if stripped.startswith("groups:") or "\ngroups:" in text[:200]:
                groups = groups_parse(text)
                for g in groups:
                    if not _name_ok(g.name):
                        raise RuleFileError([f"invalid group name: {g.name!r}"])
                services.namespace_replace(org_id=self.org.pk, namespace=namespace, groups=groups)
            else:
                parsed = group_parse(text)
                if not _name_ok(parsed.name):
                    raise RuleFileError([f"invalid group name: {parsed.name!r}"])
                services.group_save(org_id=self.org.pk, namespace=namespace, group=parsed)
        except (RuleFileError, services.RulesRefused) as exc:
            return _ruler_json(400, str(exc))
        return _ruler_json(202)

    def delete(self, request, namespace: str | None = None, group: str | None = None):
        if namespace is None:
            return _text_error("name the namespace to delete", 405)
        # As Mimir: deleting what does not exist (here, or in another org) is 404.
        if group is None:
            deleted = services.namespace_delete(org_id=self.org.pk, namespace=namespace)
        else:
            deleted = services.group_delete(org_id=self.org.pk, namespace=namespace, name=group)
        if not deleted:
            return _text_error("no rule groups found", 404)
        return _ruler_json(202)


class RulesView(PrometheusView):
    """``GET /prometheus/api/v1/rules``, with Prometheus's filters ``type=alert|record``,
    ``rule_name[]``, ``rule_group[]`` and ``file[]`` (the namespace)."""

    def handle(self):
        kind = self.param("type")
        if kind not in (None, "", "alert", "record"):
            raise promql.BadData(f'invalid parameter "type": unsupported type {kind!r}')
        return success(
            selectors.rules_api(
                org_id=self.org.pk,
                kind={"alert": "alerting", "record": "recording"}.get(kind or ""),
                rule_names=set(self.params("rule_name[]")) or None,
                group_names=set(self.params("rule_group[]")) or None,
                namespaces=set(self.params("file[]")) or None,
            )
        )


class AlertsView(PrometheusView):
    def handle(self):
        return success(selectors.alerts_api(org_id=self.org.pk))


class TargetsView(OrgAPIView):
    """``GET/PUT /api/v1/alerting/targets``: ``{"alertmanagers": [...], "webhooks": [...]}``;
    secrets are never shown back. GET adds ``status``: the last delivery per target."""

    scopes = {"GET": [Scope.METRICS_READ], "PUT": [Scope.RULES_WRITE]}

    def _answer(self, config) -> HttpResponse:
        body = notify.targets_public(config.targets or {})
        body["status"] = selectors.delivery_status(org_id=self.org.pk)
        return HttpResponse(json.dumps(body), content_type="application/json")

    def get(self, request):
        return self._answer(selectors.alerting_config_get(org_id=self.org.pk))

    def put(self, request):
        try:
            clean = notify.targets_clean(request.data)
        except notify.TargetsInvalid as exc:
            return HttpResponse(
                json.dumps({"error": str(exc)}), status=400, content_type="application/json"
            )
        config = services.alerting_targets_update(org_id=self.org.pk, targets=clean)
        return self._answer(config)
