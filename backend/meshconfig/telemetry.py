"""Telemetry settings rendered as Istio configuration: a mesh-wide ``Telemetry`` resource
(added to every revision published while the settings exist) and the
``meshConfig.extensionProviders`` entry that sends traces to this Canopy over OTLP/HTTP.

Pure functions over plain values."""

from __future__ import annotations

from urllib.parse import urlsplit

import yaml

PROVIDER = "canopy"
ROOT_NAMESPACE = "istio-system"
RESOURCE_NAME = "canopy-mesh-default"
TOKEN_PLACEHOLDER = "<a Canopy API token with the traces:write scope>"


def render_telemetry(
    *, trace_sampling_percent: float, traces: bool, metrics: bool, custom_tags: dict[str, str]
) -> dict:
    """The mesh-wide Telemetry resource (root namespace, no selector)."""
    tracing = {
        "providers": [{"name": PROVIDER}],
        "randomSamplingPercentage": float(trace_sampling_percent),
        "disableSpanReporting": not traces,
    }
    if custom_tags:
        tracing["customTags"] = {
            name: {"literal": {"value": value}} for name, value in sorted(custom_tags.items())
        }
    metric = {"providers": [{"name": "prometheus"}]}
    if not metrics:
        metric["overrides"] = [{"match": {"metric": "ALL_METRICS"}, "disabled": True}]
    return {
        "apiVersion": "telemetry.istio.io/v1",
        "kind": "Telemetry",
        "metadata": {
            "name": RESOURCE_NAME,
            "namespace": ROOT_NAMESPACE,
            "labels": {"app.kubernetes.io/managed-by": "canopy"},
        },
        "spec": {"tracing": [tracing], "metrics": [metric]},
    }


def render_extension_provider(*, public_url: str) -> dict:
    """The ``meshConfig`` snippet (``istioctl install`` IstioOperator or the istiod Helm
    chart's values) declaring the ``canopy`` OTLP/HTTP tracing provider."""
    url = urlsplit(public_url)
    port = url.port or (443 if url.scheme == "https" else 80)
    return {
        "meshConfig": {
            "extensionProviders": [
                {
                    "name": PROVIDER,
                    "opentelemetry": {
                        "service": url.hostname or "localhost",
                        "port": port,
                        "http": {
                            "path": "/v1/traces",
                            "timeout": "10s",
                            "headers": [
                                {"name": "Authorization", "value": f"Bearer {TOKEN_PLACEHOLDER}"},
                            ],
                        },
                    },
                }
            ]
        }
    }


def to_yaml(value) -> str:
    return yaml.safe_dump(value, sort_keys=False, default_flow_style=False)
