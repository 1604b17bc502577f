"""POST /prometheus/api/v1/read: Prometheus remote read, SAMPLES and STREAMED_XOR_CHUNKS,
limits, errors and isolation between orgs."""

from __future__ import annotations

import math
import struct

import cramjam
import google_crc32c
import pytest

from backend.metrics.proto import remote_read_pb2 as pb
from backend.metrics.remote_read import xor_chunk
from backend.tenancy.models import Scope
from backend.tenancy.services import limits_update
from tests.helpers.credentials import basic, bearer
from tests.metrics.samples import STALE, T0, counter, load

pytestmark = pytest.mark.django_db
URL = "/prometheus/api/v1/read"


@pytest.fixture
def data(tenants):
    load(
        tenants.org,
        {
            counter("istio_requests_total", app="reviews"): [(i * 15, 10.0 * i) for i in range(41)],
            counter("istio_requests_total", app="ratings"): [(i * 15, 1.0 * i) for i in range(41)],
            counter("up", job="mesh"): [(0, 1.0), (15, math.inf), (30, STALE), (45, -0.0)],
        },
    )
    load(tenants.other_org, {counter("istio_requests_total", app="secret"): [(0, 1.0)]})
    return tenants


def read_request(*queries, accepted=()) -> bytes:
    request = pb.ReadRequest(accepted_response_types=list(accepted))
    for start, end, matchers in queries:
        query = request.queries.add(start_timestamp_ms=start, end_timestamp_ms=end)
        for kind, name, value in matchers:
            query.matchers.add(type=kind, name=name, value=value)
    return bytes(cramjam.snappy.compress_raw(request.SerializeToString()))


def post(api, body, auth):
    return api.generic("POST", URL, body, content_type="application/x-protobuf", **auth)


def samples_of(response) -> list[dict]:
    assert response.status_code == 200, response.content
    assert response["Content-Encoding"] == "snappy"
    message = pb.ReadResponse.FromString(bytes(cramjam.snappy.decompress_raw(response.content)))
    return [
        {
            tuple((label.name, label.value) for label in series.labels): [
                (s.timestamp, s.value) for s in series.samples
            ]
            for series in result.timeseries
        }
        for result in message.results
    ]


def test_samples_of_each_query_in_the_org(api, data):
    auth = bearer(data.token([Scope.METRICS_READ]))
    body = read_request(
        (T0, T0 + 30_000, [(pb.LabelMatcher.EQ, "__name__", "istio_requests_total")]),
        (T0, T0 + 600_000, [(pb.LabelMatcher.RE, "__name__", "u.")]),
    )
    requests, up = samples_of(post(api, body, auth))
    assert requests == {
        (("__name__", "istio_requests_total"), ("app", app)): [
            (T0, 0.0),
            (T0 + 15_000, step),
            (T0 + 30_000, 2 * step),
        ]
        for app, step in (("ratings", 1.0), ("reviews", 10.0))
    }
    ((labels, points),) = up.items()
    assert labels == (("__name__", "up"), ("job", "mesh"))
    # special values pass bit for bit (the staleness marker too)
    assert [struct.pack("<d", v) for _, v in points] == [
        struct.pack("<d", v) for v in (1.0, math.inf, STALE, -0.0)
    ]
    # basic auth with the org slug, as Prometheus's remote_read basic_auth sends it
    token = data.token([Scope.METRICS_READ])
    assert post(api, body, basic("acme", token)).content == post(api, body, auth).content


def test_isolation_and_scopes(api, data):
    body = read_request((0, 2**62, [(pb.LabelMatcher.NEQ, "__name__", "")]))
    (outsider,) = samples_of(post(api, body, bearer(data.outsider_token())))
    assert [dict(k)["app"] for k in outsider] == ["secret"]
    assert post(api, body, bearer(data.token([Scope.METRICS_WRITE]))).status_code == 403
    assert post(api, body, {}).status_code == 401
    assert api.get(URL, **bearer(data.token([Scope.METRICS_READ]))).status_code == 405


def test_bad_requests_and_limits_answer_400_with_the_reason(api, data):
    auth = bearer(data.token([Scope.METRICS_READ]))
    for body, reason in (
        (b"", "empty body"),
        (b"\x05garbage", "snappy"),
        (bytes(cramjam.snappy.compress_raw(b"\xff\xff")), "ReadRequest"),
        (read_request((0, 1, [])), "at least one matcher"),
        (read_request((0, 1, [(pb.LabelMatcher.RE, "a", "(")])), "invalid regex"),
        (read_request((0, 1, [(pb.LabelMatcher.EQ, "a", "b")]), accepted=[7]), "response types"),
    ):
        response = post(api, body, auth)
        assert response.status_code == 400 and reason in response.content.decode(), reason
    everything = read_request((0, 2**62, [(pb.LabelMatcher.RE, "__name__", ".+")]))
    limits_update(org=data.org, changes={"query_max_samples": 50})
    response = post(api, everything, auth)
    assert response.status_code == 400
    assert response.content.decode().strip() == "exceeded sample limit (50)"
    limits_update(org=data.org, changes={"query_max_samples": 10_000, "query_max_series": 2})
    response = post(api, everything, auth)
    assert response.status_code == 400 and "series limit (2)" in response.content.decode()


def _frames(content: bytes):
    at = 0
    while at < len(content):
        size = shift = 0
        while True:
            byte = content[at]
            at += 1
            size |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                break
        checksum = struct.unpack(">I", content[at : at + 4])[0]
        data = content[at + 4 : at + 4 + size]
        assert google_crc32c.value(data) == checksum
        yield pb.ChunkedReadResponse.FromString(data)
        at += 4 + size


class _BitReader:
    def __init__(self, data: bytes) -> None:
        self.value = int.from_bytes(data, "big")
        self.left = len(data) * 8

    def read(self, n: int) -> int:
        self.left -= n
        return (self.value >> self.left) & ((1 << n) - 1)

    def uvarint(self) -> int:
        out = shift = 0
        while True:
            byte = self.read(8)
            out |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return out


def _signed(value: int, bits: int) -> int:
    return value - (1 << bits) if value >> (bits - 1) else value


def decode_xor(data: bytes) -> list[tuple[int, int]]:
    """An independent reading of Prometheus's XOR chunk layout (tsdb/chunkenc/xor.go)."""
    r = _BitReader(data)
    n = r.read(16)
    out: list[tuple[int, int]] = []
    t = delta = bits = leading = trailing = 0
    for i in range(n):
        if i == 0:
            z = r.uvarint()
            t = (z >> 1) ^ -(z & 1)
            bits = r.read(64)
        else:
            if i == 1:
                delta = r.uvarint()
            else:
                prefix = 0
                for _ in range(4):
                    prefix = prefix << 1 | r.read(1)
                    if not prefix & 1:
                        break
                size = {0b0: 0, 0b10: 14, 0b110: 17, 0b1110: 20, 0b1111: 64}[prefix]
                delta += _signed(r.read(size), size) if size else 0
            t += delta
            if r.read(1):
                if r.read(1):
                    leading = r.read(5)
                    sig = r.read(6) or 64
                    trailing = 64 - leading - sig
                bits ^= r.read(64 - leading - trailing) << trailing
        out.append((t, bits))
    return out


def test_xor_chunks_round_trip_timestamps_and_value_bits():
    cases = [
        [(1_700_000_000_000 + 15_000 * i, float(i * 10)) for i in range(120)],
        [(5, 1.5), (6, 1.5), (1_000_000, -2.0), (1_000_001, math.nan), (1_000_002, math.inf)],
        [(-10, 0.1), (0, 0.2), (70_000, 0.3), (2**40, STALE), (2**40 + 1, 1e300)],
        [(42, 3.0)],
    ]
    for samples in cases:
        ts = [t for t, _ in samples]
        vs = [v for _, v in samples]
        decoded = decode_xor(xor_chunk(ts, vs))
        assert decoded == [(t, struct.unpack("<Q", struct.pack("<d", v))[0]) for t, v in samples]


def test_streamed_xor_chunks(api, data):
    auth = bearer(data.token([Scope.METRICS_READ]))
    body = read_request(
        (T0, T0 + 600_000, [(pb.LabelMatcher.EQ, "app", "reviews")]),
        (T0, T0 + 600_000, [(pb.LabelMatcher.EQ, "__name__", "up")]),
        accepted=[pb.ReadRequest.STREAMED_XOR_CHUNKS, pb.ReadRequest.SAMPLES],
    )
    response = post(api, body, auth)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/x-streamed-protobuf")
    frames = list(_frames(b"".join(response.streaming_content)))
    assert [f.query_index for f in frames] == [0, 1]
    (series,) = frames[0].chunked_series
    assert [(label.name, label.value) for label in series.labels] == [
        ("__name__", "istio_requests_total"),
        ("app", "reviews"),
    ]
    (chunk,) = series.chunks
    assert chunk.type == pb.Chunk.XOR and chunk.min_time_ms == T0
    points = decode_xor(chunk.data)
    assert [t for t, _ in points] == [T0 + 15_000 * i for i in range(41)]
    assert chunk.max_time_ms == T0 + 600_000
    assert [struct.unpack("<d", struct.pack("<Q", b))[0] for _, b in points][-1] == 400.0
