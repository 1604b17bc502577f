"""Protobuf schemas of the wire protocols Canopy decodes, and their generated Python code.

The ``.proto`` files are Canopy's own, written from the field numbers of the public
specifications: Prometheus remote-write 1.0 and 2.0 (package ``canopy.prompb.v1`` /
``canopy.prompb.v2``), Zipkin v2 ``ListOfSpans`` (``canopy.zipkin.proto3``) and the
``google.rpc.Status`` of OTLP/HTTP error bodies (``canopy.rpc``); only field numbers and types
matter on the wire. OTLP itself comes from the ``opentelemetry-proto`` package. The
``*_pb2.py``/``*_pb2.pyi`` files next to them are generated and committed; regenerate them after
editing a ``.proto``, from the repository root (the well-known ``google/protobuf/any.proto``
comes with grpcio-tools):

    .venv/bin/pip install 'grpcio-tools==1.85.1'
    .venv/bin/python -m grpc_tools.protoc -I. --python_out=. --pyi_out=. \\
        ingest/decoders/proto/remote_write_v1.proto ingest/decoders/proto/remote_write_v2.proto \\
        ingest/decoders/proto/zipkin.proto ingest/decoders/proto/rpc_status.proto

grpcio-tools 1.85.1 bundles protoc 35.1, whose Python gencode (7.35.1) needs the ``protobuf``
runtime >= 7.35.1 and < 8 (it checks at import time). Running protoc from the repository root
registers the files under their full path, so they cannot clash with another ``remote_write``
(or ``zipkin``) schema in the default descriptor pool.
"""
