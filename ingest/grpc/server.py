"""The OTLP/gRPC server (port 4317): ``TraceService/Export`` and ``MetricsService/Export``.

A separate process (``python -m ingest.grpc.server``, started by ``make run``). Handlers take
and return raw protobuf bytes (no (de)serializers): the decoders read the bytes directly.
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

from ingest.grpc import otlp_metrics, otlp_traces

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 64 * 1024 * 1024


# service -> method -> handler: everything the server answers (the reliability suite walks it)
METHODS = {
    otlp_traces.SERVICE: {"Export": otlp_traces.otlp_traces_receive},
    otlp_metrics.SERVICE: {"Export": otlp_metrics.otlp_metrics_receive},
}


def method_names() -> list[str]:
    """The full names (``/package.Service/Method``) of every method the server registers."""
    return [f"/{service}/{method}" for service, methods in METHODS.items() for method in methods]


def build_server(bind: str, *, workers: int = 8) -> tuple[grpc.Server, int]:
    """A gRPC server with the OTLP services registered; returns it and the bound port."""
    handlers = [
        grpc.method_handlers_generic_handler(
            service,
            {
                name: grpc.unary_unary_rpc_method_handler(handler)
                for name, handler in methods.items()
            },
        )
        for service, methods in METHODS.items()
    ]
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers),
        handlers=handlers,
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
