"""Decoded sample blocks kept in each process, least recently used first out: a chunk cache.

A block is never changed once written (compaction and late writes add new blocks with new
ids; retention deletes them), so a decoded block can serve every later query that reads it.
Entries are keyed by (org, block id) and carry the block's header, which every read has just
fetched from the org's own rows and compares: an entry is only used for the very block a query
of that org found, and a block id that came to name another block (a restored database) is
decoded afresh, never answered stale. The size is bounded in bytes
(``CANOPY_PROMQL_BLOCK_CACHE_MB`` per process; 0 turns it off); a query decodes for the cache
at most a quarter of that, the rest only for itself (``reader._decoded``).

This is what Mimir's store-gateway chunks cache does for the object store: the decompression
of blocks a dashboard reads again every few seconds is paid once per process.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from django.conf import settings

from backend.metrics.storage.blocks import BlockHeader
from backend.metrics.storage.encoding import Decoded

_lock = threading.Lock()
_entries: OrderedDict[tuple[int, int], tuple[BlockHeader, Decoded]] = OrderedDict()
_size = 0


def capacity() -> int:
    return settings.PROMQL_BLOCK_CACHE_BYTES


def get_many(org_id: int, headers: list[BlockHeader]) -> list[Decoded | None]:
    """The decoded blocks of ``headers`` held (None for the others), in their order."""
    out: list[Decoded | None] = []
    with _lock:
        for header in headers:
            key = (org_id, header.id)
            entry = _entries.get(key)
            if entry is None or entry[0] != header:
                out.append(None)
                continue
            _entries.move_to_end(key)
            out.append(entry[1])
    return out


def put(org_id: int, header: BlockHeader, decoded: Decoded) -> None:
    global _size
    limit = capacity()
    size = decoded.nbytes
    if size > limit:
        return
    key = (org_id, header.id)
    with _lock:
        old = _entries.pop(key, None)
        if old is not None:
            _size -= old[1].nbytes
        _entries[key] = (header, decoded)
        _size += size
        while _size > limit:
            _, (_, evicted) = _entries.popitem(last=False)
            _size -= evicted.nbytes


def stats() -> tuple[int, int]:
    """(entries, bytes) held now."""
    with _lock:
        return len(_entries), _size


def clear() -> None:
    global _size
    with _lock:
        _entries.clear()
        _size = 0
