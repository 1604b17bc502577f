"""OTLP/gRPC traces: ``opentelemetry.proto.collector.trace.v1.TraceService/Export``, served by
:mod:`ingest.grpc.server` beside the metrics service.

Shares the HTTP receivers' decoding and acceptance (``ingest.accept.traces``). The request bytes
go straight to the decoder (no intermediate message object); the token comes from the
``authorization`` metadata, as Istio's and the OTel Collector's ``headers`` settings send it.
"""

from __future__ import annotations

import grpc

# (no Django here: the server sets Django up only after this module is imported)
from ingest.accept.payload import Payload
from ingest.grpc.calls import GRPC_STATUS, authorized_org, refused_abort

__all__ = ["GRPC_STATUS", "SERVICE", "otlp_traces_receive"]

SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"


def otlp_traces_receive(request_bytes: bytes, context: grpc.ServicerContext) -> bytes:
    # (imported here: the server sets Django up after this module is imported)
    from django.db import close_old_connections

    from backend.tenancy.models import Scope
    from ingest.accept.refusals import Refused
    from ingest.accept.traces import TraceFormat, traces_accept
    from ingest.decoders.otlp_traces import encode_partial_success

    close_old_connections()
    try:
        org_id = authorized_org(context, Scope.TRACES_WRITE)
        outcome = traces_accept(
            org_id=org_id,
            trace_format=TraceFormat.OTLP_PROTOBUF,
            # gRPC itself bounds the message (MAX_MESSAGE_BYTES), not the org's request cap.
            payload=Payload(read=lambda _cap: request_bytes),
        )
        if isinstance(outcome, Refused):
            refused_abort(outcome, context)
        return encode_partial_success(outcome.rejected_spans, outcome.message(), None)
    finally:
        close_old_connections()
