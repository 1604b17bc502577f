"""What the OpenAPI schema (``/api/schema/``, shown at ``/api/docs/``) says beyond what
drf-spectacular reads from the DRF views.

- The token authentication (``Authorization: Bearer <token>`` or ``Basic base64(<org
  slug>:<token>)``) as security schemes, next to the session cookie.
- The ingest endpoints: they are plain Django views (the receivers in ``ingest/``, which the
  backend never imports), so a postprocessing hook adds them as paths, looked up by URL name,
  with their content types and the status codes senders act on.
"""

from __future__ import annotations

from django.urls import NoReverseMatch, reverse
from drf_spectacular.extensions import OpenApiAuthenticationExtension

BASIC_SCHEME = {
    "type": "http",
    "scheme": "basic",
    "description": "Username: the org's slug; password: an API token of that org (what "
    "Prometheus and Grafana send).",
}


class TokenAuthenticationScheme(OpenApiAuthenticationExtension):
    """The token as a bearer scheme; the hook adds basic auth as an alternative to it."""

    target_class = "backend.tenancy.authentication.TokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API token (`cnp_…`), made under Settings → API tokens.",
        }


def _status(description: str, media_types: tuple[str, ...] = ()) -> dict:
    out: dict = {"description": description}
    if media_types:
        out["content"] = {m: {"schema": {"type": "string"}} for m in media_types}
    return out


_TEXT = ("text/plain",)
_OTLP = ("application/x-protobuf", "application/json")


def _refusals(media: tuple[str, ...]) -> dict:
    return {
        "400": _status(
            "The payload cannot be read, or some of it was refused (the reason is in the body; "
            "the valid part is stored). Not to be retried.",
            media,
        ),
        "401": _status("No token, or an invalid, expired or revoked one.", media),
        "403": _status("The token lacks the scope this endpoint needs.", media),
        "413": _status("The body is larger than the ingest cap.", media),
        "415": _status("A content type or encoding this endpoint does not read.", media),
        "429": _status("Over the org's ingest rate: retry after `Retry-After` seconds.", media),
        "503": _status("Storage is unavailable: retry with backoff.", media),
    }


def _body(description: str, media: dict[str, str]) -> dict:
    return {
        "required": True,
        "description": description,
        "content": {
            m: {"schema": {"type": "string", "format": "binary", "description": d}}
            for m, d in media.items()
        },
    }


_REMOTE_WRITE = {
    "tags": ["ingest"],
    "summary": "Prometheus remote write (1.0 and 2.0)",
    "description": (
        "What Prometheus, Grafana Agent/Alloy and the OpenTelemetry Collector's "
        "`prometheusremotewrite` exporter send: a snappy-compressed protobuf `WriteRequest` "
        "(1.0) or `io.prometheus.write.v2.Request` (2.0). Needs the `metrics:write` scope. "
        "A 2xx means the samples are durable; retrying the same request is harmless."
    ),
    "parameters": [
        {
            "name": "Content-Encoding",
            "in": "header",
            "required": True,
            "schema": {"type": "string", "enum": ["snappy"]},
        },
        {
            "name": "X-Prometheus-Remote-Write-Version",
            "in": "header",
            "required": False,
            "schema": {"type": "string", "example": "0.1.0"},
            "description": "`0.1.0` for 1.0 (the default), `2.0.0` for 2.0.",
        },
    ],
    "requestBody": _body(
        "Snappy-compressed protobuf.",
        {
            "application/x-protobuf": "prometheus.WriteRequest (1.0)",
            "application/x-protobuf;proto=io.prometheus.write.v2.Request": "2.0",
        },
    ),
    "responses": {
        "204": _status(
            "Stored. `X-Prometheus-Remote-Write-Samples-Written` (and `-Exemplars-Written`) "
            "say how many."
        ),
        **_refusals(_TEXT),
    },
    "security": [{"bearerAuth": []}, {"basicAuth": []}],
}


def _otlp(signal: str, scope: str, message: str) -> dict:
    return {
        "tags": ["ingest"],
        "summary": f"OTLP/HTTP {signal}",
        "description": (
            f"An OTLP `{message}`, as OpenTelemetry SDKs and the Collector's `otlphttp` "
            f"exporter send it (binary protobuf or JSON, optionally `Content-Encoding: gzip`). "
            f"Needs the `{scope}` scope. OTLP/gRPC is served on its own port (4317 by default). "
            "A 200 means durable; a partial success names what was refused and why."
        ),
        "parameters": [
            {
                "name": "Content-Encoding",
                "in": "header",
                "required": False,
                "schema": {"type": "string", "enum": ["gzip", "identity"]},
            }
        ],
        "requestBody": _body(
            f"`{message}`.",
            {"application/x-protobuf": "binary protobuf", "application/json": "OTLP JSON"},
        ),
        "responses": {
            "200": _status(
                f"Stored; an `Export{signal.title()}ServiceResponse` (with `partial_success` "
                "when some data was refused), in the request's encoding.",
                _OTLP,
            ),
            **_refusals(_OTLP),
        },
        "security": [{"bearerAuth": []}, {"basicAuth": []}],
    }


_ZIPKIN = {
    "tags": ["ingest"],
    "summary": "Zipkin v2 spans",
    "description": (
        "A list of Zipkin v2 spans, as Envoy/Istio's Zipkin tracer and Zipkin clients send "
        "them (JSON or `zipkin2.ListOfSpans` protobuf). Needs the `traces:write` scope. "
        "Zipkin has no partial success: the valid spans are stored and a 400 says which "
        "were not."
    ),
    "requestBody": _body(
        "Zipkin v2 spans.",
        {"application/json": "[Span, …]", "application/x-protobuf": "zipkin2.ListOfSpans"},
    ),
    "responses": {"202": _status("Stored."), **_refusals(_TEXT)},
    "security": [{"bearerAuth": []}, {"basicAuth": []}],
}

# URL name → (operation id, the operation); aliases share the operation.
INGEST_PATHS = {
    "remote-write": ("remote_write", _REMOTE_WRITE),
    "remote-write-prometheus": ("remote_write_prometheus_path", _REMOTE_WRITE),
    "remote-write-legacy": ("remote_write_cortex_path", _REMOTE_WRITE),
    "otlp-traces": ("otlp_traces", _otlp("traces", "traces:write", "ExportTraceServiceRequest")),
    "otlp-metrics": (
        "otlp_metrics",
        _otlp("metrics", "metrics:write", "ExportMetricsServiceRequest"),
    ),
    "otlp-metrics-default-path": (
        "otlp_metrics_default_path",
        _otlp("metrics", "metrics:write", "ExportMetricsServiceRequest"),
    ),
    "zipkin-spans": ("zipkin_spans", _ZIPKIN),
}

TAGS = [
    {
        "name": "ingest",
        "description": "Writing metrics and spans (token only: senders are not browsers).",
    },
    {"name": "prometheus", "description": "Prometheus' HTTP API, what Grafana reads."},
    {"name": "jaeger", "description": "Jaeger's query API (and v3), what Grafana reads."},
    {"name": "zipkin", "description": "Zipkin's query API."},
]


def ingest_paths(result, generator, request, public):
    """drf-spectacular postprocessing hook: add the ingest endpoints, the token schemes and
    the tags' descriptions."""
    paths = result.setdefault("paths", {})
    schemes = result.setdefault("components", {}).setdefault("securitySchemes", {})
    schemes["basicAuth"] = BASIC_SCHEME
    for operations in paths.values():
        for operation in operations.values():
            security = operation.get("security")
            if security and {"bearerAuth": []} in security and {"basicAuth": []} not in security:
                security.insert(security.index({"bearerAuth": []}) + 1, {"basicAuth": []})
    for url_name, (operation_id, operation) in INGEST_PATHS.items():
        try:
            path = reverse(url_name)
        except NoReverseMatch:  # a deployment without the receivers
            continue
        paths[path] = {"post": {**operation, "operationId": operation_id}}
    ours = {t["name"] for t in TAGS}
    result["tags"] = [*TAGS, *[t for t in result.get("tags", []) if t["name"] not in ours]]
    return result
