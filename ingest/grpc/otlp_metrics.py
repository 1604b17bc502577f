"""OTLP/gRPC metrics: ``opentelemetry.proto.collector.metrics.v1.MetricsService/Export``, served
by :mod:`ingest.grpc.server` beside the traces service (same server, same port).

The request bytes go to the same accept service as ``POST /otlp/v1/metrics``
(``ingest.accept.metrics.otlp_metrics_accept``); a partial success answers what was rejected.
"""

from __future__ import annotations

import grpc

# (no Django here: the server sets Django up only after this module is imported)
from ingest.accept.payload import Payload
from ingest.grpc.calls import authorized_org, refused_abort

SERVICE = "opentelemetry.proto.collector.metrics.v1.MetricsService"
_PROTOBUF = "application/x-protobuf"


def otlp_metrics_receive(request_bytes: bytes, context: grpc.ServicerContext) -> bytes:
    from django.db import close_old_connections

    from backend.tenancy.models import Scope
    from ingest.accept.metrics import otlp_metrics_accept
    from ingest.accept.refusals import Refused
    from ingest.decoders.otlp_metrics import encode_metrics_partial_success

    close_old_connections()
    try:
        org_id = authorized_org(context, Scope.METRICS_WRITE)
        outcome = otlp_metrics_accept(
            org_id=org_id,
            # gRPC itself bounds the message (the server's MAX_MESSAGE_BYTES) and decompresses
            # it; the org's request cap applies to what arrives.
            payload=Payload(read=lambda _cap: request_bytes, content_type=_PROTOBUF),
        )
        if isinstance(outcome, Refused):
            refused_abort(outcome, context)
        return encode_metrics_partial_success(outcome.rejected_data_points, outcome.message(), None)
    finally:
        close_old_connections()
