"""The Mesh config pages: clusters (state badges, create with the agent command, delete),
the YAML editor (validate and publish run in the browser against the user API), the revision
timeline (diff against the parent, rollout, rollback) and the telemetry form. Thin: the
session's access from ``backend.tenancy.access``, reads from ``backend.meshconfig.selectors``,
writes through ``backend.meshconfig.services``."""

from __future__ import annotations

from collections import OrderedDict
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.html import escape
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_POST

from backend.meshconfig import selectors, services
from backend.meshconfig.diff import bundle_yaml, bundles_diff
from backend.meshconfig.telemetry import render_extension_provider, render_telemetry, to_yaml
from backend.tenancy.access import Access, OrgNotFound, session_access
from backend.tenancy.models import Scope

REVISIONS_SHOWN = 50
EDITOR_EXAMPLE = """\
# Istio resources, one YAML document each. Validate, then publish a revision.
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
  namespace: bookinfo
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
  namespace: bookinfo
spec:
  host: reviews
  subsets:
  - name: v1
    labels: {version: v1}
"""


def _access(request) -> Access:
    try:
        access = session_access(request, org_slug=request.GET.get("org"))
    except OrgNotFound as exc:
        raise Http404(exc.message) from exc
    if access is None:
        raise Http404("You are not a member of any organization yet.")
    return access


def _writer(request) -> Access:
    access = _access(request)
    if not access.allows(Scope.CONFIG_WRITE):
        raise Http404("viewers cannot change the mesh configuration")
    return access


def _back(name: str, access: Access, **params) -> HttpResponse:
    return redirect(f"{reverse(name)}?{urlencode({'org': access.org.slug, **params})}")


def _errors(exc: ValidationError) -> str:
    if hasattr(exc, "error_dict"):
        return "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
    return "; ".join(exc.messages)


def _common(access: Access, tab: str) -> dict:
    return {
        "tab": tab,
        "can_write": access.allows(Scope.CONFIG_WRITE),
        "can_force": access.allows(Scope.ADMIN),
    }


@login_required
def clusters(request: HttpRequest) -> HttpResponse:
    access = _access(request)
    created = request.session.pop("meshconfig_created", None)
    head = selectors.revision_head(org=access.org)
    return render(
        request,
        "web/mesh_config_clusters.html",
        {
            **_common(access, "clusters"),
            "clusters": selectors.clusters_list(org=access.org),
            "summary": selectors.status_summary(org=access.org),
            "head": head,
            "created": created,
            "public_url": settings.PUBLIC_URL,
        },
    )


@login_required
@require_POST
def cluster_create(request: HttpRequest) -> HttpResponse:
    access = _writer(request)
    labels = {}
    for line in request.POST.get("labels", "").replace(",", "\n").splitlines():
        key, sep, value = line.strip().partition("=")
        if not line.strip():
            continue
        if not sep:
            messages.error(request, f"Labels are key=value pairs: {line.strip()!r} is not.")
            return _back("web:config-clusters", access)
        labels[key.strip()] = value.strip()
    try:
        cluster, secret = services.cluster_create(
            org=access.org,
            name=request.POST.get("name", "").strip(),
            labels=labels,
            actor=request.user,
        )
    except ValidationError as exc:
        messages.error(request, _errors(exc))
        return _back("web:config-clusters", access)
    # Shown once, on the next page only (not in the URL, not in a message that gets logged).
    request.session["meshconfig_created"] = {
        "name": cluster.name,
        "command": selectors.agent_command(secret=secret),
    }
    return _back("web:config-clusters", access)


@login_required
@require_POST
def cluster_delete(request: HttpRequest, name: str) -> HttpResponse:
    access = _writer(request)
    cluster = selectors.cluster_get(org=access.org, name=name)
    if cluster is None:
        raise Http404("no such cluster")
    services.cluster_delete(cluster=cluster, actor=request.user)
    messages.success(request, f"Cluster {name} deleted; its agent token is revoked.")
    return _back("web:config-clusters", access)


@login_required
@require_POST
def cluster_token_rotate(request: HttpRequest, name: str) -> HttpResponse:
    access = _writer(request)
    cluster = selectors.cluster_get(org=access.org, name=name)
    if cluster is None:
        raise Http404("no such cluster")
    secret = services.cluster_token_rotate(cluster=cluster, actor=request.user)
    request.session["meshconfig_created"] = {
        "name": cluster.name,
        "rotated": True,
        "command": selectors.agent_command(secret=secret),
    }
    return _back("web:config-clusters", access)


@login_required
def editor(request: HttpRequest) -> HttpResponse:
    access = _access(request)
    head = selectors.revision_head(org=access.org)
    start = request.GET.get("from")
    source = head
    if start and start.isdigit():
        source = selectors.revision_get(org=access.org, number=int(start)) or head
    text = bundle_yaml(source.resources).removeprefix("---\n") if source else EDITOR_EXAMPLE
    return render(
        request,
        "web/mesh_config_editor.html",
        {
            **_common(access, "editor"),
            "head": head,
            "source": source,
            "text": text,
            "clusters": selectors.clusters_list(org=access.org),
            "api": {
                "validate": reverse("meshconfig:validate"),
                "revisions": reverse("meshconfig:revisions"),
                "rollouts": reverse("meshconfig:rollouts"),
                "status": reverse("meshconfig:status"),
            },
        },
    )


# A revision's diff against its parent, as the page shows it, kept per process: it depends
# only on the two bundles (named by their SHA-256 digests) and the two numbers in its labels.
_DIFFS: OrderedDict[tuple, list[dict]] = OrderedDict()
_DIFFS_MAX = 500


def _diff_key(rev, parent) -> tuple:
    return (
        rev.org_id,
        rev.number,
        rev.digest,
        parent.number if parent else None,
        parent.digest if parent else None,
    )


def _revision_diff(rev, parent, bundles: dict[int, list[dict]]) -> list[dict]:
    """The diff against the parent (``bundles``: revision id -> resources, for the
    revisions whose diff is not kept yet)."""
    key = _diff_key(rev, parent)
    found = _DIFFS.get(key)
    if found is not None:
        _DIFFS.move_to_end(key)
        return found
    diff = bundles_diff(
        bundles[parent.pk] if parent else [],
        bundles[rev.pk],
        a_label=f"r{parent.number}" if parent else "empty",
        b_label=f"r{rev.number}",
    )
    for d in diff:
        # the <pre>'s lines, escaped once here rather than by a template loop per line
        d["html"] = mark_safe(  # noqa: S308 - every line escaped, classes are constants
            "".join(
                f'<span class="{_diff_class(line)}">{escape(line)}</span>\n'
                for line in d["diff"].splitlines()
            )
        )
    _DIFFS[key] = diff
    if len(_DIFFS) > _DIFFS_MAX:
        _DIFFS.popitem(last=False)
    return diff


def _diff_class(line: str) -> str:
    if line.startswith(("+++", "---")):
        return "diff-file"
    if line.startswith("@@"):
        return "diff-hunk"
    return {"+": "diff-add", "-": "diff-del"}.get(line[:1], "diff-ctx")


@login_required
def revisions(request: HttpRequest) -> HttpResponse:
    access = _access(request)
    revs = selectors.revisions_list(org=access.org, limit=REVISIONS_SHOWN, with_resources=False)
    by_number = {r.number: r for r in revs}
    parents = {
        r.pk: by_number.get(r.parent.number, r.parent) if r.parent_id else None for r in revs
    }
    # The bundles are read only for the diffs not kept yet.
    missing = [r for r in revs if _diff_key(r, parents[r.pk]) not in _DIFFS]
    bundles = (
        selectors.revisions_resources(
            org=access.org,
            ids={r.pk for r in missing} | {parents[r.pk].pk for r in missing if parents[r.pk]},
        )
        if missing
        else {}
    )
    cluster_views = selectors.clusters_list(org=access.org)
    desired: dict[int, list[str]] = {}
    for view in cluster_views:
        if view.desired is not None:
            desired.setdefault(view.desired, []).append(view.cluster.name)
    rows = []
    for rev in revs:
        parent = parents[rev.pk]
        findings = (rev.validation or {}).get("findings", [])
        diff = _revision_diff(rev, parent, bundles)
        rows.append(
            {
                "rev": rev,
                "errors": sum(1 for f in findings if f["severity"] == "error"),
                "warnings": sum(1 for f in findings if f["severity"] == "warning"),
                "findings": findings,
                "diff": diff,
                "desired_on": sorted(desired.get(rev.number, [])),
            }
        )
    return render(
        request,
        "web/mesh_config_revisions.html",
        {
            **_common(access, "revisions"),
            "rows": rows,
            "clusters": cluster_views,
        },
    )


@login_required
@require_POST
def rollout(request: HttpRequest) -> HttpResponse:
    access = _writer(request)
    try:
        number = int(request.POST.get("revision", ""))
    except ValueError as exc:
        raise Http404("no such revision") from exc
    names = request.POST.getlist("clusters")
    if not names:
        messages.error(request, "Choose at least one cluster to roll out to.")
        return _back("web:config-revisions", access)
    try:
        chosen = services.rollout_create(
            org=access.org, revision=number, clusters=names, actor=request.user
        )
    except ValidationError as exc:
        messages.error(request, _errors(exc))
    else:
        messages.success(
            request,
            f"Revision {number} is now desired on {', '.join(sorted(c.name for c in chosen))}.",
        )
    return _back("web:config-clusters", access)


@login_required
@require_POST
def rollback(request: HttpRequest, number: int) -> HttpResponse:
    access = _writer(request)
    if selectors.revision_get(org=access.org, number=number) is None:
        raise Http404("no such revision")
    force = request.POST.get("force") == "on"
    if force and not access.allows(Scope.ADMIN):
        raise Http404("only admins force")
    try:
        published, moved = services.revision_rollback(
            org=access.org, number=number, actor=request.user, force=force
        )
    except services.Blocked as exc:
        messages.error(
            request,
            f"Rolling back to revision {number} is blocked by validation errors: "
            f"{exc.report.summary()}",
        )
    except ValidationError as exc:
        messages.error(request, _errors(exc))
    else:
        where = ", ".join(sorted(c.name for c in moved)) or "no cluster (none was past it)"
        messages.success(
            request,
            f"Revision {published.revision.number} restores revision {number}; rolled out to "
            f"{where}.",
        )
    return _back("web:config-revisions", access)


@login_required
def telemetry(request: HttpRequest) -> HttpResponse:
    access = _access(request)
    if request.method == "POST":
        access = _writer(request)
        tags = {}
        for line in request.POST.get("custom_tags", "").splitlines():
            key, sep, value = line.strip().partition("=")
            if line.strip() and sep:
                tags[key.strip()] = value.strip()
            elif line.strip():
                messages.error(request, f"Custom tags are name=value lines: {line.strip()!r}.")
                return _back("web:config-telemetry", access)
        try:
            percent = float(request.POST.get("trace_sampling_percent", ""))
        except ValueError:
            messages.error(request, "The sampling percentage is a number from 0 to 100.")
            return _back("web:config-telemetry", access)
        try:
            services.telemetry_update(
                org=access.org,
                trace_sampling_percent=percent,
                traces=request.POST.get("traces") == "on",
                metrics=request.POST.get("metrics") == "on",
                custom_tags=tags,
                actor=request.user,
            )
        except ValidationError as exc:
            messages.error(request, _errors(exc))
        else:
            messages.success(request, "Saved. The next revision you publish carries them.")
        return _back("web:config-telemetry", access)
    row = selectors.telemetry_get(org=access.org)
    values = {
        "trace_sampling_percent": row.trace_sampling_percent,
        "traces": row.traces,
        "metrics": row.metrics,
        "custom_tags": row.custom_tags,
    }
    return render(
        request,
        "web/mesh_config_telemetry.html",
        {
            **_common(access, "telemetry"),
            "settings_row": row,
            "tags_text": "\n".join(f"{k}={v}" for k, v in sorted(row.custom_tags.items())),
            "resource_yaml": to_yaml(render_telemetry(**values)),
            "provider_yaml": to_yaml(render_extension_provider(public_url=settings.PUBLIC_URL)),
        },
    )
