"""OTLP/gRPC: ``opentelemetry.proto.collector.trace.v1.TraceService/Export`` (port 4317).

A separate process (``python -m ingest.otlp_grpc``, started by ``make run``) that shares the
HTTP receivers' decoding and acceptance. The request bytes go straight to the decoder (no
intermediate message object); the token comes from the ``authorization`` metadata, as
Istio's and the OTel Collector's ``headers`` settings send it.
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

log = logging.getLogger(__name__)

SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"
MAX_MESSAGE_BYTES = 64 * 1024 * 1024


def _export(request_bytes: bytes, context: grpc.ServicerContext) -> bytes:
    from django.db import DatabaseError, close_old_connections
    from redis.exceptions import RedisError

    from backend.tenancy.access import AccessError, access_from_grpc_metadata
    from backend.tenancy.models import Scope
    from backend.tenancy.selectors import limits_get
    from ingest.decoders.errors import DecodeError
    from ingest.decoders.otlp_traces import decode_otlp_protobuf, encode_partial_success
    from ingest.traces_accept import RateLimited, accept_spans, span_limits

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
        limits = limits_get(org_id=access.org_id)
        try:
            batch = decode_otlp_protobuf(request_bytes, span_limits(limits))
            accepted = accept_spans(org_id=access.org_id, limits=limits, batch=batch)
        except DecodeError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except RateLimited as exc:
            context.set_trailing_metadata((("retry-after", str(exc.retry_after)),))
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
        except (DatabaseError, RedisError) as exc:
            log.exception("trace storage unavailable")
            context.abort(grpc.StatusCode.UNAVAILABLE, f"storage unavailable: {exc}")
        return encode_partial_success(accepted.rejected_spans, accepted.message(), None)
    finally:
        close_old_connections()


def build_server(bind: str, *, workers: int = 8) -> tuple[grpc.Server, int]:
    """A gRPC server with the TraceService registered; returns it and the bound port."""
    handler = grpc.method_handlers_generic_handler(
        SERVICE,
        {
            # No (de)serializers: the handler takes and returns raw protobuf bytes.
            "Export": grpc.unary_unary_rpc_method_handler(_export),
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
    parser.add_argument("--bind", default=os.environ.get("CANOPY_OTLP_GRPC_BIND", "127.0.0.1:4317"))
    parser.add_argument("--workers", type=int, default=8)
    args = parser.parse_args(argv)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backend.settings")
    import django

    django.setup()
    server, port = build_server(args.bind, workers=args.workers)
    server.start()
    log.warning("OTLP/gRPC listening on %s", args.bind.rsplit(":", 1)[0] + f":{port}")
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
