"""OTLP/gRPC: ``opentelemetry.proto.collector.trace.v1.TraceService/Export`` (port 4317).

A separate process (``python -m ingest.grpc.otlp_traces``, started by ``make run``) that shares
the HTTP receivers' decoding and acceptance (``ingest.accept.traces``). The request bytes go
straight to the decoder (no intermediate message object); the token comes from the
``authorization`` metadata, as Istio's and the OTel Collector's ``headers`` settings send it.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from concurrent import futures

import grpc

# (no Django here: ``main`` sets Django up only after this module is imported)
from ingest.accept.payload import Payload
from ingest.accept.refusals import Refusal, Refused

log = logging.getLogger(__name__)

SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"
MAX_MESSAGE_BYTES = 64 * 1024 * 1024


# A refusal's gRPC status; OTLP/gRPC senders retry UNAVAILABLE and RESOURCE_EXHAUSTED.
GRPC_STATUS = {
    Refusal.PAYLOAD_TOO_LARGE: grpc.StatusCode.INVALID_ARGUMENT,
    Refusal.UNSUPPORTED_MEDIA_TYPE: grpc.StatusCode.INVALID_ARGUMENT,
    Refusal.INVALID: grpc.StatusCode.INVALID_ARGUMENT,
    Refusal.RATE_LIMITED: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Refusal.STORAGE_UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
}


def otlp_traces_receive(request_bytes: bytes, context: grpc.ServicerContext) -> bytes:
    # (imported here: ``main`` sets Django up after this module is imported)
    from django.db import close_old_connections

    from backend.tenancy.access import AccessError, access_from_grpc_metadata
    from backend.tenancy.models import Scope
    from ingest.accept.traces import TraceFormat, traces_accept
    from ingest.decoders.otlp_traces import encode_partial_success

    close_old_connections()
    try:
        try:
            access = access_from_grpc_metadata(context.invocation_metadata())
        except AccessError as exc:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, exc.message)
        if access is None:
            context.abort(
                grpc.StatusCode.UNAUTHENTICATED,
                "send a Canopy API token in the authorization metadata: 'Bearer <token>'",
            )
        if not access.allows(Scope.TRACES_WRITE):
            context.abort(grpc.StatusCode.PERMISSION_DENIED, "this token lacks traces:write")
        outcome = traces_accept(
            org_id=access.org_id,
            trace_format=TraceFormat.OTLP_PROTOBUF,
            # gRPC itself bounds the message (MAX_MESSAGE_BYTES), not the org's request cap.
            payload=Payload(read=lambda _cap: request_bytes),
        )
        if isinstance(outcome, Refused):
            _refused_abort(outcome, context)
        return encode_partial_success(outcome.rejected_spans, outcome.message(), None)
    finally:
        close_old_connections()


def _refused_abort(refused: Refused, context: grpc.ServicerContext) -> None:
    """Ends the call with the refusal's status (``context.abort`` raises)."""
    status = GRPC_STATUS[refused.refusal]
    if status is grpc.StatusCode.RESOURCE_EXHAUSTED:
        context.set_trailing_metadata((("retry-after", str(refused.retry_after)),))
    message = refused.message
    if status is grpc.StatusCode.UNAVAILABLE:
        message = f"storage unavailable: {refused.cause}"
    context.abort(status, message)


def build_server(bind: str, *, workers: int = 8) -> tuple[grpc.Server, int]:
    """A gRPC server with the TraceService registered; returns it and the bound port."""
    handler = grpc.method_handlers_generic_handler(
        SERVICE,
        {
            # No (de)serializers: the handler takes and returns raw protobuf bytes.
            "Export": grpc.unary_unary_rpc_method_handler(otlp_traces_receive),
        },
    )
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers),
        handlers=[handler],
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ],
    )
    port = server.add_insecure_port(bind)
    if port == 0:
        raise RuntimeError(f"cannot listen on {bind}")
    return server, port


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bind", help="host:port (default: the CANOPY_OTLP_GRPC_BIND setting)")
    parser.add_argument("--workers", type=int, default=8)
    args = parser.parse_args(argv)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backend.settings")
    import django

    django.setup()
    from django.conf import settings

    bind = args.bind or settings.OTLP_GRPC_BIND
    server, port = build_server(bind, workers=args.workers)
    server.start()
    log.warning("OTLP/gRPC listening on %s", bind.rsplit(":", 1)[0] + f":{port}")
    stopped = threading.Event()

    def stop(*_):
        server.stop(grace=5).wait()
        stopped.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    stopped.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
