"""The user API of mesh configuration (DRF, in the OpenAPI schema). Thin: parse, call a
service or selector, render. Scopes ``config:read`` / ``config:write`` (or a member's session);
forcing a publish past blocking errors needs ``admin``. A cluster's agent token is refused
here: it reads its own bundle through the agent API only."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import ParseError, PermissionDenied, ValidationError
from rest_framework.parsers import BaseParser
from rest_framework.response import Response

from backend.meshconfig import selectors, services
from backend.meshconfig.diff import bundle_yaml, bundles_diff
from backend.meshconfig.parsing import (
    MAX_BODY_BYTES,
    BodyError,
    resources_from_json,
    resources_from_yaml,
)
from backend.meshconfig.telemetry import (
    render_extension_provider,
    render_telemetry,
    to_yaml,
)
from backend.meshconfig.validation import validate_bundle
from backend.tenancy.api_base import OrgAPIView
from backend.tenancy.models import Scope
from backend.tenancy.parsers import BoundedJSONParser

READ, WRITE = [Scope.CONFIG_READ], [Scope.CONFIG_WRITE]


class YAMLResources(list):
    """The resources of a YAML body, checked by ``resources_from_yaml`` (a JSON array is not
    one: it goes through the JSON body's checks)."""


class YAMLParser(BaseParser):
    """A multi-document YAML stream of resources; ``request.data`` is the list."""

    media_type = "application/yaml"

    def parse(self, stream, media_type=None, parser_context=None):
        body = stream.read(MAX_BODY_BYTES + 1) if stream is not None else b""
        try:
            return YAMLResources(resources_from_yaml(body))
        except BodyError as exc:
            raise ParseError(str(exc)) from exc


class XYAMLParser(YAMLParser):
    media_type = "application/x-yaml"


class TextYAMLParser(YAMLParser):
    media_type = "text/yaml"


PARSERS = [BoundedJSONParser, YAMLParser, XYAMLParser, TextYAMLParser]


def _service_call(fn, **kwargs):
    try:
        return fn(**kwargs)
    except DjangoValidationError as exc:
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages}
        raise ValidationError(detail) from exc


def _truthy(value) -> bool:
    return str(value).lower() in ("1", "true", "yes", "on")


class MeshAPIView(OrgAPIView):
    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        if self.access.token is not None and selectors.is_agent_token(self.access.token):
            raise PermissionDenied(
                "a cluster's agent token reads its own bundle only, at /api/v1/agent/config"
            )

    def resources_in(self, request) -> list[dict]:
        data = request.data
        if isinstance(data, YAMLResources):
            return data
        try:
            return resources_from_json(data)
        except BodyError as exc:
            raise ParseError(str(exc)) from exc

    def option(self, request, name: str):
        """A publishing option: a query parameter, or a field of a JSON body."""
        if name in request.query_params:
            return request.query_params[name]
        data = request.data
        return data.get(name) if isinstance(data, dict) else None

    def check_force(self, request) -> bool:
        force = _truthy(self.option(request, "force") or "")
        if force and not self.access.allows(Scope.ADMIN):
            raise PermissionDenied("only an admin may force a publish past blocking errors")
        return force


_FINDING = inline_serializer(
    "Finding",
    {
        "code": serializers.CharField(),
        "severity": serializers.ChoiceField(["error", "warning", "info"]),
        "kind": serializers.CharField(),
        "namespace": serializers.CharField(),
        "name": serializers.CharField(),
        "path": serializers.CharField(),
        "message": serializers.CharField(),
    },
)
_REPORT = inline_serializer(
    "ValidationReport", {"valid": serializers.BooleanField(), "findings": _FINDING}
)
_PUBLISHED = inline_serializer(
    "Published",
    {
        "number": serializers.IntegerField(),
        "digest": serializers.CharField(),
        "findings": _FINDING,
    },
)
_BUNDLE_BODY = {
    "application/json": inline_serializer(
        "ResourcesBody",
        {
            "resources": serializers.ListField(child=serializers.DictField()),
            "message": serializers.CharField(required=False),
            "parent": serializers.IntegerField(required=False, allow_null=True),
            "force": serializers.BooleanField(required=False),
        },
    ),
    "application/yaml": OpenApiTypes.STR,
}
_CLUSTER = inline_serializer(
    "ClusterStatus",
    {
        "name": serializers.CharField(),
        "labels": serializers.DictField(child=serializers.CharField()),
        "desired": serializers.IntegerField(allow_null=True),
        "applied": serializers.IntegerField(allow_null=True),
        "state": serializers.ChoiceField(["SYNCED", "APPLYING", "NACK", "STALE", "DISCONNECTED"]),
        "last_seen": serializers.DateTimeField(allow_null=True),
        "agent_version": serializers.CharField(),
        "error": serializers.DictField(allow_null=True),
    },
)


class ClusterCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=63)
    labels = serializers.DictField(child=serializers.CharField(max_length=63), required=False)


class ClustersView(MeshAPIView):
    scopes = {"GET": READ, "POST": WRITE}

    @extend_schema(responses=_CLUSTER)
    def get(self, request):
        return Response([v.as_dict() for v in selectors.clusters_list(org=self.org)])

    @extend_schema(
        request=ClusterCreateSerializer,
        responses={
            201: inline_serializer(
                "ClusterCreated",
                {
                    "name": serializers.CharField(),
                    "labels": serializers.DictField(),
                    "token": serializers.CharField(help_text="shown once"),
                    "agent_command": serializers.CharField(),
                },
            )
        },
    )
    def post(self, request):
        data = ClusterCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        cluster, secret = _service_call(
            services.cluster_create,
            org=self.org,
            name=data.validated_data["name"],
            labels=data.validated_data.get("labels"),
            actor=request.user,
        )
        return Response(
            {
                "name": cluster.name,
                "labels": cluster.labels,
                "token": secret,
                "agent_command": selectors.agent_command(secret=secret),
            },
            status=status.HTTP_201_CREATED,
        )


class ClusterDetailView(MeshAPIView):
    scopes = {"GET": READ, "DELETE": WRITE}

    def _cluster(self, name):
        cluster = selectors.cluster_get(org=self.org, name=name)
        if cluster is None:
            raise Http404("no such cluster")
        return cluster

    @extend_schema(responses=_CLUSTER)
    def get(self, request, name):
        cluster = self._cluster(name)
        view = selectors.ClusterView(
            cluster=cluster, status=cluster.status, state=selectors.cluster_state(cluster.status)
        )
        return Response(view.as_dict())

    @extend_schema(responses={204: None})
    def delete(self, request, name):
        services.cluster_delete(cluster=self._cluster(name), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ValidateView(MeshAPIView):
    scopes = {"POST": READ}
    parser_classes = PARSERS

    @extend_schema(request=_BUNDLE_BODY, responses=_REPORT)
    def post(self, request):
        report = validate_bundle(self.resources_in(request), org=self.org)
        return Response(report.as_dict())


def _revision_summary(rev) -> dict:
    validation = rev.validation or {}
    findings = validation.get("findings", [])
    author = rev.author.get_username() if rev.author_id else None
    if author is None and rev.author_token_id:
        author = f"token {rev.author_token.prefix}…"
    return {
        "number": rev.number,
        "digest": rev.digest,
        "parent": rev.parent.number if rev.parent_id else None,
        "author": author,
        "message": rev.message,
        "created_at": rev.created_at.isoformat(),
        "valid": validation.get("valid", True),
        "errors": sum(1 for f in findings if f.get("severity") == "error"),
        "warnings": sum(1 for f in findings if f.get("severity") == "warning"),
        "forced": rev.forced,
        "rollback_of": rev.rollback_of,
        "resources": len(rev.resources),
    }


_REVISION = inline_serializer(
    "RevisionSummary",
    {
        "number": serializers.IntegerField(),
        "digest": serializers.CharField(),
        "parent": serializers.IntegerField(allow_null=True),
        "author": serializers.CharField(allow_null=True),
        "message": serializers.CharField(),
        "created_at": serializers.DateTimeField(),
        "valid": serializers.BooleanField(),
        "errors": serializers.IntegerField(),
        "warnings": serializers.IntegerField(),
        "forced": serializers.BooleanField(),
        "rollback_of": serializers.IntegerField(allow_null=True),
        "resources": serializers.IntegerField(help_text="how many"),
    },
)


_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


def _int_param(request, name, default=None, *, low=1, high=None):
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ValidationError({name: "must be an integer"}) from exc
    if value < low or (high is not None and value > high):
        raise ValidationError({name: f"must be between {low} and {high}"})
    return value


# Bounds of a time parameter: 1970 to 9999, in milliseconds since the epoch.
_MAX_MS = 253_402_300_799_999


def _time_param(request, name) -> datetime | None:
    """A point in time: integer milliseconds since the epoch, or an RFC 3339 timestamp
    (a zone offset required)."""
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return None
    raw = raw.strip()
    if raw.isdigit():
        if len(raw) > 15 or int(raw) > _MAX_MS:
            raise ValidationError({name: "out of range"})
        return datetime.fromtimestamp(int(raw) / 1000, tz=UTC)
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise ValidationError(
            {name: "must be milliseconds since the epoch or an RFC 3339 timestamp"}
        ) from exc
    if value.tzinfo is None:
        raise ValidationError({name: "an RFC 3339 timestamp needs a zone (Z or +hh:mm)"})
    return value


class RevisionsView(MeshAPIView):
    scopes = {"GET": READ, "POST": WRITE}
    parser_classes = PARSERS

    @extend_schema(
        parameters=[
            OpenApiParameter("limit", int, description="at most 500 (default 100)"),
            OpenApiParameter("before", int, description="revisions numbered below this"),
            OpenApiParameter(
                "since",
                str,
                description="created at or after: milliseconds since the epoch, or RFC 3339",
            ),
            OpenApiParameter(
                "until",
                str,
                description="created at or before: milliseconds since the epoch, or RFC 3339",
            ),
            OpenApiParameter(
                "service",
                str,
                description="with namespace: only the revisions that changed a resource "
                "touching this service (its host, or workloads labelled app=service); each "
                "then lists them in `touched`",
            ),
            OpenApiParameter("namespace", str, description="the service's namespace"),
        ],
        responses=_REVISION,
    )
    def get(self, request):
        limit = _int_param(request, "limit", 100, high=500)
        before = _int_param(request, "before")
        since = _time_param(request, "since")
        until = _time_param(request, "until")
        if since and until and since > until:
            raise ValidationError({"since": "must not be after until"})
        namespace = request.query_params.get("namespace", "")
        service = request.query_params.get("service", "")
        if bool(namespace) != bool(service):
            raise ValidationError({"service": "service and namespace go together"})
        if service:
            for name, value in (("namespace", namespace), ("service", service)):
                if not _DNS_LABEL.fullmatch(value):
                    raise ValidationError({name: "must be a DNS label (a-z, 0-9, -; 63 at most)"})
            if before is not None:
                raise ValidationError({"before": "not with service"})
            found = selectors.revisions_touching(
                org=self.org,
                namespace=namespace,
                service=service,
                limit=limit,
                since=since,
                until=until,
            )
            return Response([{**_revision_summary(r), "touched": t} for r, t in found])
        revs = selectors.revisions_list(
            org=self.org, limit=limit, before=before, since=since, until=until
        )
        return Response([_revision_summary(r) for r in revs])

    @extend_schema(
        request=_BUNDLE_BODY,
        parameters=[
            OpenApiParameter("message", str, description="for a YAML body"),
            OpenApiParameter("parent", int, description="the head this edit started from"),
            OpenApiParameter("force", bool, description="admins: publish despite errors"),
        ],
        responses={201: _PUBLISHED, 409: OpenApiTypes.OBJECT, 422: _REPORT},
    )
    def post(self, request):
        resources = self.resources_in(request)
        force = self.check_force(request)
        message = self.option(request, "message") or ""
        parent = self.option(request, "parent")
        check_parent = "parent" in request.query_params or (
            isinstance(request.data, dict) and "parent" in request.data
        )
        if parent in ("", "null", "none"):
            parent = None
        if parent is not None:
            try:
                parent = int(parent)
            except (TypeError, ValueError) as exc:
                raise ValidationError({"parent": "must be a revision number"}) from exc
        try:
            published = _service_call(
                services.revision_publish,
                org=self.org,
                resources=resources,
                message=str(message),
                parent=parent,
                check_parent=check_parent,
                actor=request.user,
                force=force,
            )
        except services.StaleParent as exc:
            return Response(
                {"detail": str(exc), "parent": exc.parent, "head": exc.head},
                status=status.HTTP_409_CONFLICT,
            )
        except services.Blocked as exc:
            return Response(
                {"detail": "validation errors block publishing", **exc.report.as_dict()},
                status=status.HTTP_422_UNPROCESSABLE_ENTITY,
            )
        rev = published.revision
        return Response(
            {
                "number": rev.number,
                "digest": rev.digest,
                "findings": published.report.as_dict()["findings"],
                "forced": rev.forced,
            },
            status=status.HTTP_201_CREATED,
        )


class RevisionDetailView(MeshAPIView):
    scopes = {"GET": READ}

    @extend_schema(
        parameters=[OpenApiParameter("format", str, enum=["json", "yaml"])],
        responses=OpenApiTypes.OBJECT,
    )
    def get(self, request, number):
        rev = selectors.revision_get(org=self.org, number=number, with_parent=True)
        if rev is None:
            raise Http404("no such revision")
        if request.query_params.get("format") == "yaml":
            return HttpResponse(bundle_yaml(rev.resources), content_type="application/yaml")
        return Response(
            {
                **_revision_summary(rev),
                "resources": rev.resources,
                "findings": (rev.validation or {}).get("findings", []),
            }
        )

    # ?format=yaml is ours, not DRF's content negotiation.
    def get_format_suffix(self, **kwargs):
        return None

    def perform_content_negotiation(self, request, force=False):
        return super().perform_content_negotiation(request, force=True)


class RevisionDiffView(MeshAPIView):
    scopes = {"GET": READ}

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request, a, b):
        left = selectors.revision_get(org=self.org, number=a)
        right = selectors.revision_get(org=self.org, number=b)
        if left is None or right is None:
            raise Http404("no such revision")
        return Response(
            {
                "a": a,
                "b": b,
                "resources": bundles_diff(
                    left.resources, right.resources, a_label=f"r{a}", b_label=f"r{b}"
                ),
            }
        )


class RollbackView(MeshAPIView):
    scopes = {"POST": WRITE}

    @extend_schema(
        request=None,
        parameters=[OpenApiParameter("force", bool)],
        responses={201: _PUBLISHED, 422: _REPORT},
    )
    def post(self, request, number):
        if selectors.revision_get(org=self.org, number=number) is None:
            raise Http404("no such revision")
        force = self.check_force(request)
        try:
            published, clusters = _service_call(
                services.revision_rollback,
                org=self.org,
                number=number,
                actor=request.user,
                force=force,
            )
        except services.Blocked as exc:
            return Response(
                {"detail": "validation errors block the rollback", **exc.report.as_dict()},
                status=status.HTTP_422_UNPROCESSABLE_ENTITY,
            )
        rev = published.revision
        return Response(
            {
                "number": rev.number,
                "digest": rev.digest,
                "findings": published.report.as_dict()["findings"],
                "rollback_of": number,
                "clusters": sorted(c.name for c in clusters),
            },
            status=status.HTTP_201_CREATED,
        )


class RolloutSerializer(serializers.Serializer):
    revision = serializers.IntegerField(min_value=1)
    clusters = serializers.ListField(
        child=serializers.CharField(max_length=63), required=False, max_length=1000
    )
    selector = serializers.DictField(child=serializers.CharField(max_length=63), required=False)


class RolloutsView(MeshAPIView):
    scopes = {"POST": WRITE}

    @extend_schema(
        request=RolloutSerializer,
        responses={
            201: inline_serializer(
                "Rollout",
                {"revision": serializers.IntegerField(), "clusters": serializers.ListField()},
            )
        },
    )
    def post(self, request):
        data = RolloutSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        if ("clusters" in v) == ("selector" in v):
            raise ValidationError({"detail": "give either clusters or a selector"})
        if selectors.revision_get(org=self.org, number=v["revision"]) is None:
            raise Http404("no such revision")
        clusters = _service_call(
            services.rollout_create,
            org=self.org,
            revision=v["revision"],
            clusters=v.get("clusters"),
            selector=v.get("selector"),
            actor=request.user,
        )
        return Response(
            {"revision": v["revision"], "clusters": sorted(c.name for c in clusters)},
            status=status.HTTP_201_CREATED,
        )


class StatusView(MeshAPIView):
    scopes = {"GET": READ}

    @extend_schema(
        responses=inline_serializer(
            "MeshStatus",
            {
                "clusters": _CLUSTER,
                "synced": serializers.IntegerField(),
                "total": serializers.IntegerField(),
                "head": serializers.IntegerField(allow_null=True),
            },
        )
    )
    def get(self, request):
        summary = selectors.status_summary(org=self.org)
        head = selectors.revision_head(org=self.org)
        return Response({**summary, "head": head.number if head else None})


class TelemetrySerializer(serializers.Serializer):
    trace_sampling_percent = serializers.FloatField(min_value=0, max_value=100)
    traces = serializers.BooleanField()
    metrics = serializers.BooleanField()
    custom_tags = serializers.DictField(
        child=serializers.CharField(max_length=200, allow_blank=True), required=False
    )


def telemetry_body(settings_row) -> dict:
    values = {
        "trace_sampling_percent": settings_row.trace_sampling_percent,
        "traces": settings_row.traces,
        "metrics": settings_row.metrics,
        "custom_tags": settings_row.custom_tags,
    }
    provider = render_extension_provider(public_url=settings.PUBLIC_URL)
    return {
        **values,
        "saved": settings_row.pk is not None,
        "telemetry_resource": to_yaml(render_telemetry(**values)),
        "extension_providers": to_yaml(provider),
    }


class TelemetryView(MeshAPIView):
    scopes = {"GET": READ, "PUT": WRITE}

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request):
        return Response(telemetry_body(selectors.telemetry_get(org=self.org)))

    @extend_schema(request=TelemetrySerializer, responses=OpenApiTypes.OBJECT)
    def put(self, request):
        data = TelemetrySerializer(data=request.data)
        data.is_valid(raise_exception=True)
        row = _service_call(
            services.telemetry_update,
            org=self.org,
            trace_sampling_percent=data.validated_data["trace_sampling_percent"],
            traces=data.validated_data["traces"],
            metrics=data.validated_data["metrics"],
            custom_tags=data.validated_data.get("custom_tags") or {},
            actor=request.user,
        )
        return Response(telemetry_body(row))
