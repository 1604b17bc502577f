"""The span model of the tracing domain, and the one table of span kinds.

A leaf module: it imports nothing of Django or of the rest of the project, so the wire decoders
(``ingest/decoders``, whose code must stay free of Django) build :class:`Span` from it too; the
import-linter contracts in ``pyproject.toml`` keep it that way. (Importing it still runs
``backend/__init__.py``, which creates the Celery app and so loads Django: the decoders' code
uses none of it, but a process importing them has it loaded.)

One span in two shapes, their common fields in the same order:

* :class:`Span` is a span as a decoder produced it and the storage writes it: ids are raw bytes
  (trace 16, span 8; Zipkin's 64-bit trace ids left-padded with zeros), times are epoch
  nanoseconds, ``kind`` and ``status_code`` are OTLP's numbers, attribute values keep their OTLP
  types (``str``, ``int``, ``float``, ``bool``, ``bytes``, ``list``, ``dict``, ``None``), events
  and links are :class:`SpanEvent` / :class:`SpanLink`, the scope is its name and version.
* :class:`StoredSpan` is the same span read back from ``trace_spans``: events and links come
  back as the JSON they were stored as (link ids in hex), the scope as ``name@version``, empty
  texts as ``None``, ``bytes`` attribute values as ``{"bytesValue": base64}``, and Zipkin's
  ``shared`` flag is not kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "KIND_BY_JAEGER_NAME",
    "KIND_BY_OTLP_NAME",
    "KIND_BY_ZIPKIN_NAME",
    "KIND_CLIENT",
    "KIND_CONSUMER",
    "KIND_INTERNAL",
    "KIND_JAEGER_NAMES",
    "KIND_OTLP_NAMES",
    "KIND_PRODUCER",
    "KIND_SERVER",
    "KIND_UNSPECIFIED",
    "KIND_ZIPKIN_NAMES",
    "SPAN_KINDS",
    "STATUS_ERROR",
    "STATUS_OK",
    "STATUS_UNSET",
    "AttributeEntries",
    "Span",
    "SpanColumns",
    "SpanEvent",
    "SpanKindNames",
    "SpanLink",
    "StoredSpan",
    "id_list",
]

# OTLP SpanKind and Status.StatusCode numbers: how every span in Canopy carries them.
KIND_UNSPECIFIED = 0
KIND_INTERNAL = 1
KIND_SERVER = 2
KIND_CLIENT = 3
KIND_PRODUCER = 4
KIND_CONSUMER = 5
STATUS_UNSET = 0
STATUS_OK = 1
STATUS_ERROR = 2


class SpanKindNames(NamedTuple):
    number: int  # OTLP SpanKind
    otlp: str  # OTLP's enum name (also the ``span_kind`` label of span metrics, as Tempo's)
    jaeger: str | None  # Jaeger's ``span.kind`` tag and ``spanKind`` parameter; None: no tag
    zipkin: str | None  # Zipkin v2's ``kind``; None: Zipkin leaves the kind out


SPAN_KINDS = (
    SpanKindNames(KIND_UNSPECIFIED, "SPAN_KIND_UNSPECIFIED", None, None),
    SpanKindNames(KIND_INTERNAL, "SPAN_KIND_INTERNAL", "internal", None),
    SpanKindNames(KIND_SERVER, "SPAN_KIND_SERVER", "server", "SERVER"),
    SpanKindNames(KIND_CLIENT, "SPAN_KIND_CLIENT", "client", "CLIENT"),
    SpanKindNames(KIND_PRODUCER, "SPAN_KIND_PRODUCER", "producer", "PRODUCER"),
    SpanKindNames(KIND_CONSUMER, "SPAN_KIND_CONSUMER", "consumer", "CONSUMER"),
)

# The table read each way (OTLP number -> name, name -> OTLP number).
KIND_OTLP_NAMES = {k.number: k.otlp for k in SPAN_KINDS}
KIND_BY_OTLP_NAME = {k.otlp: k.number for k in SPAN_KINDS}
KIND_JAEGER_NAMES = {k.number: k.jaeger for k in SPAN_KINDS if k.jaeger}
KIND_BY_JAEGER_NAME = {k.jaeger: k.number for k in SPAN_KINDS if k.jaeger}
KIND_ZIPKIN_NAMES = {k.number: k.zipkin for k in SPAN_KINDS if k.zipkin}
KIND_BY_ZIPKIN_NAME = {k.zipkin: k.number for k in SPAN_KINDS if k.zipkin}


@dataclass(slots=True)
class SpanEvent:
    time_ns: int
    name: str
    attributes: dict[str, Any]


@dataclass(slots=True)
class SpanLink:
    trace_id: bytes
    span_id: bytes
    trace_state: str
    attributes: dict[str, Any]


@dataclass(slots=True)
class Span:
    """A span as decoded and written (see the module docstring)."""

    trace_id: bytes  # 16 bytes
    span_id: bytes  # 8 bytes
    parent_span_id: bytes | None  # 8 bytes, None for a root span
    service: str  # resource service.name / Zipkin localEndpoint.serviceName
    name: str  # the operation
    kind: int  # KIND_*
    start_ns: int
    duration_ns: int
    status_code: int  # STATUS_*
    status_message: str
    attributes: dict[str, Any]
    events: list[SpanEvent]
    links: list[SpanLink]
    resource: dict[str, Any]  # shared by the spans of one resource: read-only
    scope_name: str
    scope_version: str
    trace_state: str
    flags: int  # OTLP span flags (W3C trace flags in bits 0-7); 0 for Zipkin
    shared: bool  # Zipkin: a server span that shares the client's span id (B3 single-span)


@dataclass(slots=True)
class AttributeEntries:
    """The attributes of a batch's spans without a dict per span (what the OTLP protobuf
    decoder hands the outbox): ``pairs`` are distinct (key, value) pairs, ``codes`` the pair
    number of each attribute as sent (a sequence of ints: a list, or a numpy array), the
    spans' attributes one span after another, and ``counts`` how many each span has. A span's
    attributes are ``dict(pairs[c] for c in its codes)``: a key sent twice keeps its first
    position and its last value, as in a dict. ``first_use``: every pair is used and they
    are numbered in the order of their first use in ``codes``. Read-only, as the spans'
    resources."""

    pairs: list[tuple[str, Any]]
    codes: Sequence[int]
    counts: list[int]
    first_use: bool = False

    def dicts(self) -> list[dict[str, Any]]:
        """Per span, its attributes as a dict."""
        pairs, codes = self.pairs, list(self.codes)
        out: list[dict[str, Any]] = []
        at = 0
        for n in self.counts:
            out.append(dict([pairs[c] for c in codes[at : at + n]]))
            at += n
        return out

    def take(self, idx: list[int]) -> AttributeEntries:
        """The entries of the spans ``idx`` (in that order)."""
        starts = list(accumulate(self.counts, initial=0))
        all_codes = list(self.codes)
        codes: list[int] = []
        counts = [self.counts[i] for i in idx]
        for i, n in zip(idx, counts, strict=True):
            codes.extend(all_codes[starts[i] : starts[i] + n])
        return AttributeEntries(self.pairs, codes, counts)


def id_list(raw: bytes, size: int, present: np.ndarray | None = None) -> list[bytes | None]:
    """The ``size``-byte ids one after another in ``raw`` as a list (None where ``present``
    is false), cut in C (numpy's void scalars are the bytes, zeros kept)."""
    ids = np.frombuffer(raw, f"V{size}")
    if present is None or present.all():
        return ids.tolist()
    out = ids.astype(object)
    out[~present.astype(bool)] = None
    return out.tolist()


@dataclass(slots=True, eq=False)
class SpanColumns(Sequence[Span]):
    """A batch's spans as columns, without an object per span (what the OTLP protobuf
    decoder's native scan hands the outbox): ids as one byte string each (16 bytes a trace
    id, 8 a span id, 8 zero bytes where a span has no parent), numbers as int64 arrays, and
    the strings as a number per span into the distinct ones. A ``Sequence`` of :class:`Span`
    too (made on first use, attributes None: they come as ``AttributeEntries``), for the
    code that reads spans one by one. Read-only, as the spans' resources."""

    trace_ids: bytes
    span_ids: bytes
    parent_ids: bytes
    has_parent: np.ndarray  # bool
    # per span, its group: (resource, service, scope name, scope version) in ``groups``
    group: np.ndarray
    groups: list[tuple[dict[str, Any], str, str, str]]
    name: np.ndarray  # into ``names``
    names: list[str]
    kinds: np.ndarray
    starts: np.ndarray
    durations: np.ndarray
    statuses: np.ndarray
    message: np.ndarray  # into ``messages``
    messages: list[str]
    state: np.ndarray  # into ``states``
    states: list[str]
    flags: np.ndarray
    _spans: list[Span] | None = None

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, i):  # type: ignore[override]
        return self.spans()[i]

    def __iter__(self):
        return iter(self.spans())

    def __eq__(self, other: object) -> bool:  # the same spans, as a list of them would be
        if isinstance(other, list | SpanColumns):
            return self.spans() == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def spans(self) -> list[Span]:
        """The spans as :class:`Span` (made once)."""
        if self._spans is None:
            n = len(self)
            group_of = list(map(self.groups.__getitem__, self.group.tolist()))
            resources, services, scope_names, scope_versions = (
                zip(*group_of, strict=True) if group_of else ((), (), (), ())
            )
            self._spans = list(
                map(
                    Span,
                    id_list(self.trace_ids, 16),
                    id_list(self.span_ids, 8),
                    id_list(self.parent_ids, 8, self.has_parent),
                    services,
                    list(map(self.names.__getitem__, self.name.tolist())),
                    self.kinds.tolist(),
                    self.starts.tolist(),
                    self.durations.tolist(),
                    self.statuses.tolist(),
                    list(map(self.messages.__getitem__, self.message.tolist())),
                    [None] * n,
                    [[] for _ in range(n)],
                    [[] for _ in range(n)],
                    resources,
                    scope_names,
                    scope_versions,
                    list(map(self.states.__getitem__, self.state.tolist())),
                    self.flags.tolist(),
                    [False] * n,
                )
            )
        return self._spans

    def take(self, idx: np.ndarray) -> SpanColumns:
        """The spans ``idx`` (int64 indexes, in that order)."""
        trace_ids = np.frombuffer(self.trace_ids, "V16")[idx].tobytes()
        span_ids = np.frombuffer(self.span_ids, "V8")[idx].tobytes()
        parent_ids = np.frombuffer(self.parent_ids, "V8")[idx].tobytes()
        return SpanColumns(
            trace_ids,
            span_ids,
            parent_ids,
            self.has_parent[idx],
            self.group[idx],
            self.groups,
            self.name[idx],
            self.names,
            self.kinds[idx],
            self.starts[idx],
            self.durations[idx],
            self.statuses[idx],
            self.message[idx],
            self.messages,
            self.state[idx],
            self.states,
            self.flags[idx],
        )


@dataclass(slots=True)
class StoredSpan:
    """A :class:`Span` as read back from storage (see the module docstring)."""

    trace_id: bytes
    span_id: bytes
    parent_span_id: bytes | None
    service: str
    name: str
    kind: int
    start_ns: int
    duration_ns: int
    status_code: int
    status_message: str | None
    attributes: dict[str, Any]
    events: list[dict[str, Any]]  # {"time_ns", "name", "attributes"}
    links: list[dict[str, Any]]  # {"trace_id" (hex), "span_id" (hex), "trace_state", "attributes"}
    resource: dict[str, Any]
    scope: str | None  # "name@version", or "name" without a version
    trace_state: str | None
    flags: int
