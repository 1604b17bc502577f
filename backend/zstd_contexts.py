"""Per-thread zstd contexts for every store that compresses (sample blocks, span blocks, the
trace outbox): zstandard's contexts are not thread-safe, and gunicorn's threads share the
stores' modules. Pure: no Django, so the storage encoders stay importable on their own."""

from __future__ import annotations

import threading

import zstandard

_local = threading.local()


def compressor(level: int) -> zstandard.ZstdCompressor:
    """This thread's compressor at ``level``."""
    by_level = getattr(_local, "compressors", None)
    if by_level is None:
        by_level = _local.compressors = {}
    found = by_level.get(level)
    if found is None:
        found = by_level[level] = zstandard.ZstdCompressor(level=level)
    return found


def decompressor() -> zstandard.ZstdDecompressor:
    """This thread's decompressor."""
    found = getattr(_local, "decompressor", None)
    if found is None:
        found = _local.decompressor = zstandard.ZstdDecompressor()
    return found
