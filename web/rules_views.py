"""The dashboard's Alerts and Rules pages: what the org's rules are doing, and uploading rule
files. Reads through ``backend.rules.selectors``, writes through ``backend.rules.services``."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from backend.rules import selectors, services
from backend.rules.rulefile import MAX_FILE_BYTES, RuleFileError, groups_parse
from backend.rules.templates import go_g
from backend.tenancy.models import Scope
from web.views import _page_access

EXAMPLE = """groups:
- name: istio
  rules:
  - alert: IstioHigh5xxRate
    expr: |
      sum by (destination_service) (rate(istio_requests_total{response_code=~"5.."}[5m]))
        / sum by (destination_service) (rate(istio_requests_total[5m])) > 0.05
    for: 5m
    labels:
      severity: page
    annotations:
      summary: '{{ $labels.destination_service }}: {{ $value | humanizePercentage }} 5xx'
"""


def _since(ms: int | None) -> datetime | None:
    return datetime.fromtimestamp(ms / 1000, UTC) if ms else None


@login_required
def alerts(request: HttpRequest) -> HttpResponse:
    access = _page_access(request)
    org_id = access.org.pk
    rows = selectors.alerts_for_page(org_id=org_id)
    for row in rows:
        row["since"] = _since(row["active_at_ms"])
        row["value_short"] = go_g(row["value_float"], 4)
        row["explore_url"] = reverse("web:metrics") + "?" + urlencode({"q": row["expr"]})
    config = selectors.alerting_config_get(org_id=org_id)
    targets = config.targets or {}
    return render(
        request,
        "web/alerts.html",
        {
            "alerts": rows,
            "public_url": settings.PUBLIC_URL,
            "firing": sum(1 for r in rows if r["state"] == "firing"),
            "pending": sum(1 for r in rows if r["state"] == "pending"),
            "has_rules": bool(selectors.groups_list(org_id=org_id)),
            "targets": [
                t["url"] for kind in ("alertmanagers", "webhooks") for t in targets.get(kind) or []
            ],
            "deliveries": selectors.delivery_status(org_id=org_id),
        },
    )


@login_required
def rules(request: HttpRequest) -> HttpResponse:
    access = _page_access(request)
    org_id = access.org.pk
    can_write = access.allows(Scope.RULES_WRITE)
    namespace, text = "rules.yml", ""
    if request.method == "POST":
        if not can_write:
            raise Http404("uploading rules needs the rules:write scope")
        namespace = (request.POST.get("namespace") or "").strip() or "rules.yml"
        upload = request.FILES.get("file")
        if upload is not None and upload.size > MAX_FILE_BYTES:
            messages.error(request, f"The file is larger than {MAX_FILE_BYTES} bytes.")
        else:
            raw = upload.read() if upload is not None else request.POST.get("yaml", "").encode()
            text = raw.decode("utf-8", errors="replace")
            try:
                groups = groups_parse(text)
                if not groups:
                    raise RuleFileError(["the file has no rule groups"])
                if len(namespace) > 256 or "/" in namespace:
                    raise RuleFileError(["a namespace has 1 to 256 characters and no '/'"])
                services.namespace_replace(org_id=org_id, namespace=namespace, groups=groups)
            except (RuleFileError, services.RulesRefused) as exc:
                for reason in getattr(exc, "errors", [str(exc)])[:20]:
                    messages.error(request, reason)
            else:
                messages.success(
                    request,
                    f"{len(groups)} group(s) saved in “{namespace}”; "
                    "they run from their next interval.",
                )
                return redirect(reverse("web:rules"))
    data = selectors.rules_api(org_id=org_id)
    for group in data["groups"]:
        group["errors"] = sum(1 for r in group["rules"] if r["health"] == "err")
        for rule in group["rules"]:
            rule["explore_url"] = reverse("web:metrics") + "?" + urlencode({"q": rule["query"]})
            rule["evaluation_ms"] = rule["evaluationTime"] * 1000
    return render(
        request,
        "web/rules.html",
        {
            "groups": data["groups"],
            "can_write": can_write,
            "namespace": namespace,
            "yaml_text": text,
            "example": EXAMPLE,
            "ruler_url": settings.PUBLIC_URL + "/prometheus/config/v1/rules",
        },
    )


@login_required
@require_POST
def rule_group_delete(request: HttpRequest) -> HttpResponse:
    access = _page_access(request)
    if not access.allows(Scope.RULES_WRITE):
        raise Http404("deleting rules needs the rules:write scope")
    namespace, name = request.POST.get("namespace", ""), request.POST.get("group", "")
    if services.group_delete(org_id=access.org.pk, namespace=namespace, name=name):
        messages.success(request, f"Deleted the group “{name}”.")
    return redirect(reverse("web:rules"))
