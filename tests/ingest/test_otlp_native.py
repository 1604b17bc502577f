"""The native OTLP scan (ingest/decoders/native/otlp_scan.c): built by make, and whatever it
reads decodes exactly as the protobuf runtime's path does; whatever it does not take goes
to that path."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.decode_traces import envoy_spans, otlp_request
from bench.traces_ingest import otel_spans
from ingest.decoders import otlp_native, otlp_traces
from ingest.decoders.errors import DecodeError
from ingest.decoders.otlp_traces import decode_otlp_protobuf
from ingest.decoders.spans import SpanLimits
from tests.ingest.test_trace_decoders import (
    FUZZ,
    LIMITS,
    SPAN_2,
    _comparable,
    _with_entries,
    mutated,
    pb_span,
    random_request,
    request_of,
)


@pytest.mark.skipif(not shutil.which("cc"), reason="no C compiler: make builds no native scan")
def test_the_library_is_built():
    # make install / make test compile it; without it the receiver quietly takes the slow path
    assert otlp_native.LIB is not None, f"{otlp_native.LIBRARY} missing: run `make native`"


def _runtime(body: bytes, limits: SpanLimits, monkeypatch):
    with monkeypatch.context() as m:
        m.setattr(otlp_native, "LIB", None)
        return decode_otlp_protobuf(body, limits, columns=True)


def _agree(body: bytes, limits: SpanLimits, monkeypatch) -> bool:
    """The column mode with the scan and without it: the same spans, attribute entries,
    rejections and counts (or the same DecodeError). True when the scan's batch was used."""
    try:
        expected = _runtime(body, limits, monkeypatch)
    except DecodeError as exc:
        with pytest.raises(DecodeError) as raised:
            decode_otlp_protobuf(body, limits, columns=True)
        assert str(raised.value) == str(exc)
        return False
    scanned = []
    decode_scan = otlp_traces._ProtobufDecoder.decode_scan
    with monkeypatch.context() as m:
        m.setattr(
            otlp_traces._ProtobufDecoder,
            "decode_scan",
            lambda self, *a: scanned.append(decode_scan(self, *a)) or scanned[-1],
        )
        got = decode_otlp_protobuf(body, limits, columns=True)
    assert _comparable(_with_entries(got)) == _comparable(_with_entries(expected))
    if got.attributes is not None and expected.attributes is not None:
        # the entries themselves, numbered alike (the outbox's columns follow them)
        assert got.attributes.pairs == expected.attributes.pairs
        assert list(got.attributes.codes) == list(expected.attributes.codes)
        assert list(got.attributes.counts) == list(expected.attributes.counts)
    assert [r.message for r in got.rejected] == [r.message for r in expected.rejected]
    return bool(scanned)


@pytest.mark.parametrize("make", [envoy_spans, otel_spans])
def test_bench_requests_are_scanned_and_agree(make, monkeypatch):
    for seed in range(3):
        body = otlp_request(make(500, seed=seed, start_us=1_700_000_000_000_000))
        assert _agree(body.SerializeToString(), LIMITS, monkeypatch)


def test_every_field_and_shared_resources(monkeypatch):
    spans = [
        pb_span(
            parent_span_id=b"\x01" * 8,
            kind=3,
            trace_state="k=v",
            flags=0x301,
            attributes={"a": "x" * 300, "n": 7, "f": 1.5, "b": True, "l": [1, "2"], "m": {"k": 1}},
        ),
        pb_span(span_id=SPAN_2, parent_span_id=bytes(8), kind=99, name="ü"),
    ]
    spans[0].status.code = 2
    spans[0].status.message = "boom"
    spans[1].status.code = -4
    request = request_of(*spans, zone="z" * 200)
    request.resource_spans.add().CopyFrom(request.resource_spans[0])  # a second resource
    request.resource_spans.add()  # and an empty one
    body = request.SerializeToString()
    assert _agree(body, SpanLimits(max_attribute_value_length=100), monkeypatch)
    batch = decode_otlp_protobuf(body, LIMITS, columns=True)
    assert [s.parent_span_id for s in batch.spans[:2]] == [b"\x01" * 8, None]
    assert [s.kind for s in batch.spans[:2]] == [3, 0]  # an unknown kind reads as 0


def test_what_the_scan_leaves_to_the_runtime(monkeypatch):
    with_event = pb_span()
    with_event.events.add(time_unix_nano=1, name="e")
    with_link = pb_span()
    with_link.links.add(trace_id=b"\x02" * 16, span_id=b"\x03" * 8)
    good = request_of(pb_span()).SerializeToString()
    cases = {
        "an event": request_of(with_event),
        "a link": request_of(with_link),
        "a span the receiver rejects": request_of(pb_span(), pb_span(span_id=bytes(8))),
        "over the attribute limit": request_of(pb_span(attributes={"a": 1, "b": 2, "c": 3})),
    }
    limits = SpanLimits(max_attributes_per_span=2)
    for name, request in cases.items():
        body = request.SerializeToString()
        assert not _agree(body, limits, monkeypatch), name
    # wire shapes: a group, a known field with another wire type, a status sent twice
    span = pb_span().SerializeToString()
    odd = {
        "a group": span + b"\x53\x54",  # field 10, start group; end group
        "a name as a varint": span + b"\x28\x01",
        "two statuses": span + b"\x7a\x02\x18\x02" + b"\x7a\x02\x18\x01",
    }
    for name, body_span in odd.items():
        body = _request_with_span(body_span)
        assert otlp_native.scan(body) is None, name
        _agree(body, LIMITS, monkeypatch)
    assert otlp_native.scan(good) is not None


def _request_with_span(span: bytes) -> bytes:
    def field(number: int, payload: bytes) -> bytes:
        return bytes([number << 3 | 2, len(payload)]) + payload

    return field(1, field(2, field(2, span)))


def test_the_dict_numbering_when_the_table_gives_up(monkeypatch):
    # (a probe sequence too long: number_strings answers None and a dict numbers the strings)
    body = otlp_request(envoy_spans(200, seed=1)).SerializeToString()
    expected = decode_otlp_protobuf(body, LIMITS, columns=True)
    monkeypatch.setattr(otlp_native, "number_strings", lambda *args: None)
    got = decode_otlp_protobuf(body, LIMITS, columns=True)
    assert got.spans == expected.spans
    assert got.attributes.pairs == expected.attributes.pairs
    assert list(got.attributes.codes) == list(expected.attributes.codes)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.binary(max_size=20), max_size=300))
def test_number_strings_numbers_by_first_use(strings):
    raw = b"".join(strings)
    table = np.zeros((len(strings), 3), np.int64)  # (offset, unused, length) rows
    table[:, 0] = np.cumsum([0, *map(len, strings)])[:-1]
    table[:, 2] = list(map(len, strings))
    codes, first = otlp_native.number_strings(raw, table[:, 0], table[:, 2])
    numbers: dict[bytes, int] = {}
    expected = [numbers.setdefault(s, len(numbers)) for s in strings]
    assert codes.tolist() == expected
    assert [strings[i] for i in first.tolist()] == list(numbers)


@settings(FUZZ, max_examples=100)
@given(request=random_request())
def test_scan_agrees_on_random_requests(request, monkeypatch):
    _agree(request.SerializeToString(), LIMITS, monkeypatch)


@settings(FUZZ, max_examples=150)
@given(data=st.data())
def test_scan_agrees_on_mutated_bodies(data, monkeypatch):
    base = data.draw(st.sampled_from([_ENVOY, _REQUEST]))
    _agree(data.draw(mutated(base)), LIMITS, monkeypatch)


_ENVOY = otlp_request(envoy_spans(3, seed=7)).SerializeToString()
_REQUEST = request_of(
    pb_span(attributes={"k": "v", "n": 1}), pb_span(span_id=SPAN_2), service="s"
).SerializeToString()
