"""The trace receiver's native scan of OTLP requests (``native/otlp_scan.c``, loaded with ctypes).

Walking a request's spans through the protobuf runtime costs a Python object per span and per
attribute (~13 CPU-us per Envoy span, most of the receiver's time). The scan reads the request
in C into columns instead: one int64 row per span (offsets of its ids and strings, kind, times,
status, flags, its attribute rows), per scope, per resource and per encoded attribute; and
:func:`number_strings` numbers byte strings of the request by first use (the distinct
attributes, names, trace states) with a hash table keyed by a per-process random seed. Python
then touches each *distinct* attribute or name once, and no span: the receiver keeps the
spans as columns (:class:`~backend.tracing.spans.SpanColumns`) into the outbox row.

The scan never judges a request: anything but the plain shapes exporters send (see the C file)
makes it give up, and the caller decodes that request with the protobuf runtime as before.
When the library is not built (``make install`` builds it; the Docker image too), :data:`LIB`
is None and every request takes the runtime path.
"""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["LIB", "LIBRARY", "Scan", "number_strings", "scan", "string_attributes"]

LIBRARY = Path(__file__).with_name("native") / "_otlp_scan.so"

# the C file's column numbers
(
    S_SCOPE,
    S_TRACE,
    S_SPAN,
    S_PARENT,
    S_NAME,
    S_NAME_LEN,
    S_KIND,
    S_START,
    S_END,
    S_STATUS,
    S_MESSAGE,
    S_MESSAGE_LEN,
    S_STATE,
    S_STATE_LEN,
    S_FLAGS,
    S_ATTR_FIRST,
    S_ATTR_COUNT,
) = range(17)
SPAN_COLS, SCOPE_COLS, RESOURCE_COLS, ATTR_COLS = 17, 3, 2, 2
C_RESOURCE, C_SCOPE, C_SCOPE_LEN = range(3)
R_RESOURCE, R_RESOURCE_LEN = range(2)
A_OFF, A_LEN = range(2)

_FALLBACK, _FULL = -1, -2
_MIN_SPAN_BYTES = 37  # trace id, span id and start time, with their tags: a span the scan keeps
_MIN_FIELD_BYTES = 2  # a tag and a zero length: the smallest scope, resource or attribute
_SEED = int.from_bytes(os.urandom(8), "little")  # hash flooding: unknown to senders

_P = ctypes.c_void_p
_I64 = ctypes.c_int64


def _load() -> ctypes.CDLL | None:
    try:
        lib = ctypes.CDLL(str(LIBRARY))
    except OSError:
        return None
    lib.canopy_otlp_scan.restype = ctypes.c_int
    lib.canopy_otlp_scan.argtypes = [ctypes.c_char_p, _I64, *([_P, _I64] * 4), _P]
    lib.canopy_number_strings.restype = _I64
    lib.canopy_number_strings.argtypes = [
        ctypes.c_char_p,
        _P,
        _P,
        _I64,
        _I64,
        ctypes.c_uint64,
        _P,
        _P,
        _P,
        _I64,
    ]
    lib.canopy_string_attributes.restype = None
    lib.canopy_string_attributes.argtypes = [ctypes.c_char_p, _P, _P, _I64, _I64, _P]
    return lib


LIB = _load()


@dataclass(slots=True)
class Scan:
    """The columns of one request (row layouts: the ``S_``, ``C_``, ``R_`` constants)."""

    spans: np.ndarray  # (n, SPAN_COLS) int64
    scopes: np.ndarray  # (n, SCOPE_COLS)
    resources: np.ndarray  # (n, RESOURCE_COLS)
    attributes: np.ndarray  # (n, ATTR_COLS): offset and length of each encoded KeyValue


def scan(raw: bytes) -> Scan | None:
    """The request's columns, or None when the protobuf runtime must decode it."""
    if LIB is None:
        return None
    size = len(raw)
    # first guesses, grown up to bounds the request's size sets (so a full table ends)
    bounds = (
        size // _MIN_SPAN_BYTES + 1,
        size // _MIN_FIELD_BYTES + 1,
        size // _MIN_FIELD_BYTES + 1,
        size // _MIN_FIELD_BYTES + 1,
    )
    caps = [
        min(b, c) for b, c in zip(bounds, (size // 256 + 16, 64, 64, size // 16 + 64), strict=True)
    ]
    while True:
        spans = np.empty((caps[0], SPAN_COLS), np.int64)
        scopes = np.empty((caps[1], SCOPE_COLS), np.int64)
        resources = np.empty((caps[2], RESOURCE_COLS), np.int64)
        attributes = np.empty((caps[3], ATTR_COLS), np.int64)
        counts = np.zeros(4, np.int64)
        rc = LIB.canopy_otlp_scan(
            raw,
            size,
            spans.ctypes.data,
            caps[0],
            scopes.ctypes.data,
            caps[1],
            resources.ctypes.data,
            caps[2],
            attributes.ctypes.data,
            caps[3],
            counts.ctypes.data,
        )
        if rc == 0:
            n_spans, n_scopes, n_resources, n_attributes = counts.tolist()
            return Scan(
                spans[:n_spans],
                scopes[:n_scopes],
                resources[:n_resources],
                attributes[:n_attributes],
            )
        if rc != _FULL or caps == list(bounds):
            return None
        caps = [min(b, 4 * c) for b, c in zip(bounds, caps, strict=True)]


def number_strings(raw: bytes, offsets: np.ndarray, lengths: np.ndarray) -> tuple | None:
    """``(codes, first)`` numbering the strings ``raw[offsets[i] : offsets[i] + lengths[i]]``
    by first use: ``codes[i]`` the number of string ``i`` (int64), ``first[d]`` the index of
    the first string numbered ``d``. None when the hash table degrades (the caller then
    numbers them with a dict). ``offsets`` and ``lengths`` are columns of one int64 table."""
    n = len(offsets)
    if LIB is None or offsets.strides != lengths.strides or offsets.strides[0] % 8:
        return None
    codes = np.empty(n, np.int32)
    first = np.empty(max(n, 1), np.int64)
    table = np.empty(1 << max(4, (2 * n).bit_length()), np.int64)
    distinct = LIB.canopy_number_strings(
        raw,
        offsets.ctypes.data,
        lengths.ctypes.data,
        offsets.strides[0] // 8,
        n,
        _SEED,
        codes.ctypes.data,
        first.ctypes.data,
        table.ctypes.data,
        len(table),
    )
    if distinct < 0:
        return None
    return codes.astype(np.int64), first[:distinct]


def string_attributes(raw: bytes, offsets: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Per encoded KeyValue ``raw[offsets[i] : offsets[i] + lengths[i]]``, the offset and
    length of its key and of its value when it is a plain string attribute, else -1 first:
    an (n, 4) int64 array (columns of one int64 table in, as :func:`number_strings`)."""
    out = np.empty((len(offsets), 4), np.int64)
    if len(offsets):
        LIB.canopy_string_attributes(
            raw,
            offsets.ctypes.data,
            lengths.ctypes.data,
            offsets.strides[0] // 8,
            len(offsets),
            out.ctypes.data,
        )
    return out
