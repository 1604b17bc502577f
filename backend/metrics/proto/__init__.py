"""Protobuf schema of Prometheus remote read (``remote_read.proto``, package
``canopy.prompb.read``), Canopy's own, written from the field numbers of Prometheus's public
``prompb/remote.proto`` and ``types.proto``; only field numbers and types matter on the wire.
``remote_read_pb2.py``/``.pyi`` are generated and committed; regenerate them after editing the
``.proto``, from the repository root (see ``ingest/decoders/proto/__init__.py`` for the
grpcio-tools version):

    .venv/bin/python -m grpc_tools.protoc -I. --python_out=. --pyi_out=. \\
        backend/metrics/proto/remote_read.proto
"""
