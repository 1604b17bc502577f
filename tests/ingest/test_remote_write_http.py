"""POST /api/v1/push: status codes, reasons, limits, idempotency and isolation."""

from __future__ import annotations

import math
import struct
import time

import numpy as np
import pytest

from backend.metrics.labels import Matcher
from backend.metrics.selectors import samples_for_series
from backend.metrics.storage import compaction
from backend.metrics.storage.reader import series_match
from backend.pipeline.drain import org_drain
from backend.tenancy.rejections import rejections_get
from backend.tenancy.services import limits_update
from bench import istio_payloads as ip
from tests.helpers.credentials import basic, bearer

pytestmark = pytest.mark.django_db
PROTOBUF = "application/x-protobuf"
STALE_NAN_BITS = 0x7FF0000000000002


def push(client, body, token, *, content_type=PROTOBUF, encoding="snappy", auth=None, **extra):
    headers = auth if auth is not None else bearer(token)
    if encoding is not None:
        headers = {**headers, "HTTP_CONTENT_ENCODING": encoding}
    return client.post("/api/v1/push", body, content_type=content_type, **headers, **extra)


def write_request(series: list[tuple[list[tuple[str, str]], list[tuple[int, float]]]]) -> bytes:
    """A remote-write 1.0 body (snappy) of explicit series and (timestamp, value) samples."""
    out = b""
    for labels, samples in series:
        ts_body = ip.encode_labels(labels)
        for t, v in samples:
            sample = b"\x09" + struct.pack("<d", v) + b"\x10" + ip._varint(t)
            ts_body += ip._field_bytes(2, sample)
        out += ip._field_bytes(1, ts_body)
    return ip.compress(out)


def now_ms() -> int:
    return int(time.time() * 1000)


def stored(org, name="up"):
    org_drain(signal="metrics", org_id=org.pk)
    series = series_match(org_id=org.pk, matchers=[Matcher("__name__", "=", name)])
    return series, samples_for_series(org_id=org.pk, series=series, start_ms=0, end_ms=2**62)


def test_istio_requests_are_stored_and_readable(client, tenants):
    token = tenants.token(["metrics:write"])
    start = ip.aligned_start_ms(3)
    for body in ip.build_requests(0, 3, start, n_series=200, samples_per_request=200):
        response = push(client, body, token)
        assert response.status_code == 204, response.content
        assert response["X-Prometheus-Remote-Write-Samples-Written"] == "200"
    series, samples = stored(tenants.org, "istio_requests_total")
    assert len(series) == 200
    assert sum(len(t) for t, _ in samples.values()) == 600
    one = next(iter(series.values()))
    assert one["reporter"] in ("source", "destination") and "destination_service" in one
    for ts, values in samples.values():
        assert list(ts) == [start, start + 15_000, start + 30_000]
        assert np.all(np.diff(values) > 0)  # counters rise


def test_basic_auth_with_org_slug(client, tenants):
    token = tenants.token(["metrics:write"])
    body = write_request([([("__name__", "up"), ("job", "x")], [(now_ms(), 1.0)])])
    assert push(client, body, None, auth=basic("acme", token)).status_code == 204
    assert push(client, body, None, auth=basic("globex", token)).status_code == 401


def test_stale_markers_and_special_values_survive_bit_exact(client, tenants):
    token = tenants.token(["metrics:write"])
    t = now_ms()
    stale = struct.unpack("<d", struct.pack("<Q", STALE_NAN_BITS))[0]
    body = write_request([
        ([("__name__", "up"), ("job", "a")], [(t - 3000, math.inf), (t - 2000, -0.0),
                                              (t - 1000, stale)]),
    ])  # fmt: skip
    assert push(client, body, token).status_code == 204
    _, samples = stored(tenants.org)
    ((_, values),) = samples.values()
    bits = values.view(np.uint64)
    assert values[0] == math.inf
    assert bits[1] == np.float64(-0.0).view(np.uint64)
    assert bits[2] == STALE_NAN_BITS


@pytest.mark.parametrize(
    ("labels", "reason"),
    [
        ([("job", "no-name")], "missing_metric_name"),
        ([("__name__", "1bad")], "invalid_metric_name"),
        ([("__name__", "up"), ("bad-label", "x")], "invalid_label_name"),
        ([("__name__", "up"), ("job", "a"), ("job", "b")], "duplicate_label_names"),
        ([("__name__", "up"), ("zone", "a"), ("job", "b")], "labels_not_sorted"),
        ([("__name__", "up"), ("job", "a\x00b")], "invalid_label_value"),
    ],
)
def test_invalid_series_get_400_with_reason_and_valid_ones_are_kept(
    client, tenants, labels, reason
):
    token = tenants.token(["metrics:write"])
    t = now_ms()
    body = write_request([(labels, [(t, 1.0)]), ([("__name__", "up"), ("job", "ok")], [(t, 2.0)])])
    response = push(client, body, token)
    assert response.status_code == 400
    text = response.content.decode()
    assert reason in text and "1 of 2 samples rejected" in text
    assert response["X-Prometheus-Remote-Write-Samples-Written"] == "1"
    series, _ = stored(tenants.org)
    assert [s["job"] for s in series.values()] == ["ok"]
    assert rejections_get(org_id=tenants.org.pk)["metrics"][reason] == 1


def test_label_limits_come_from_the_org(client, tenants):
    limits_update(org=tenants.org, changes={"max_label_names_per_series": 3,
                                            "max_label_value_length": 8})  # fmt: skip
    token = tenants.token(["metrics:write"])
    t = now_ms()
    too_many = [("__name__", "up"), ("a", "1"), ("b", "2"), ("c", "3")]
    too_long = [("__name__", "up"), ("job", "x" * 9)]
    for labels, reason in ((too_many, "max_label_names_per_series"),
                           (too_long, "label_value_too_long")):  # fmt: skip
        response = push(client, write_request([(labels, [(t, 1.0)])]), token)
        assert response.status_code == 400
        assert reason in response.content.decode()


def test_too_old_too_new_and_out_of_order_samples(client, tenants):
    token = tenants.token(["metrics:write"])
    t = now_ms()
    labels = [("__name__", "up"), ("job", "a")]
    cases = [
        ([(t - 2 * 3600 * 1000, 1.0)], "too_old"),
        ([(t + 3600 * 1000, 1.0)], "too_far_in_future"),
        ([(t, 1.0), (t - 1000, 2.0)], "out_of_order"),
        ([(t, 1.0), (t, 2.0)], "duplicate_timestamp"),
    ]
    for samples, reason in cases:
        response = push(client, write_request([(labels, samples)]), token)
        assert response.status_code == 400, reason
        assert reason in response.content.decode(), response.content


@pytest.mark.parametrize(
    ("content_type", "encoding", "status"),
    [
        ("application/json", "snappy", 415),
        (PROTOBUF, "gzip", 415),
        (PROTOBUF + ";proto=io.prometheus.write.v9.Request", "snappy", 415),
    ],
)
def test_unsupported_media_is_415(client, tenants, content_type, encoding, status):
    token = tenants.token(["metrics:write"])
    body = write_request([([("__name__", "up")], [(now_ms(), 1.0)])])
    response = push(client, body, token, content_type=content_type, encoding=encoding)
    assert response.status_code == status
    assert response.content.strip()


def test_garbage_is_400_and_oversized_is_413(client, tenants):
    token = tenants.token(["metrics:write"])
    assert push(client, b"\x00\x01garbage", token).status_code == 400
    not_protobuf = ip.compress(b"\xff" * 64)
    assert push(client, not_protobuf, token).status_code == 400
    limits_update(org=tenants.org, changes={"max_request_bytes": 1024})
    # A tiny body that declares 1 GiB once decompressed: refused before decompressing.
    bomb = ip._varint(1 << 30) + b"\x00"
    response = push(client, bomb, token)
    assert response.status_code == 413
    big = write_request([([("__name__", "up"), ("job", "x" * 4000)], [(now_ms(), 1.0)])])
    assert push(client, big, token).status_code == 413


def test_auth_and_scope(client, tenants):
    body = write_request([([("__name__", "up")], [(now_ms(), 1.0)])])
    assert push(client, body, None, auth={}).status_code == 401
    assert push(client, body, "cnp_wrong").status_code == 401
    read_only = tenants.token(["metrics:read"])
    response = push(client, body, read_only)
    assert response.status_code == 403
    assert "metrics:write" in response.content.decode()


def test_a_repeated_request_stores_nothing_twice(client, tenants):
    token = tenants.token(["metrics:write"])
    body = ip.build_requests(1, 1, ip.aligned_start_ms(1), n_series=100,
                             samples_per_request=100)[0]  # fmt: skip
    assert push(client, body, token).status_code == 204
    org_drain(signal="metrics", org_id=tenants.org.pk)
    assert push(client, body, token).status_code == 204  # Prometheus' retry after a timeout
    _, samples = stored(tenants.org, "istio_requests_total")
    assert sum(len(t) for t, _ in samples.values()) == 100
    compaction.blocks_compact(min_age_seconds=0)
    _, samples = stored(tenants.org, "istio_requests_total")
    assert sum(len(t) for t, _ in samples.values()) == 100


def test_rate_limit_refuses_with_429_and_recovers(client, tenants):
    limits_update(org=tenants.org, changes={"ingestion_rate": 100, "ingestion_burst_size": 150})
    token = tenants.token(["metrics:write"])
    labels = [("__name__", "up"), ("job", "a")]
    t = now_ms() - 60_000

    def body(offset):
        return write_request([(labels, [(t + offset + i, 1.0) for i in range(100)])])

    assert push(client, body(0), token).status_code == 204
    refused = push(client, body(1000), token)
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) >= 1
    time.sleep(1.1)  # 100 samples/s refill: room for another 100 after a second
    assert push(client, body(2000), token).status_code == 204
    assert rejections_get(org_id=tenants.org.pk)["metrics"]["rate_limited"] == 100


def test_a_tenant_already_over_its_rate_is_refused_before_its_body_is_decoded(client, tenants):
    """A tenant at 10x its limit cost the others CPU by having every refused body decoded
    (tests/reliability/load.py); with its bucket empty it is refused unread."""
    limits_update(org=tenants.org, changes={"ingestion_rate": 10, "ingestion_burst_size": 150})
    token = tenants.token(["metrics:write"])
    labels = [("__name__", "up"), ("job", "a")]
    t = now_ms() - 60_000
    # bigger than the burst: admitted on a full bucket, which it leaves 150 tokens in debt
    big = write_request([(labels, [(t + i, 1.0) for i in range(300)])])
    assert push(client, big, token).status_code == 204
    garbage = push(client, b"\xff not snappy at all", token)
    assert garbage.status_code == 429  # not 400: the body was never read
    assert int(garbage["Retry-After"]) >= 1
    assert "ingestion rate limit (10 samples/s)" in garbage.content.decode()
    # another tenant, never over its rate, still gets its bad body read and refused as such
    other = tenants.token(["metrics:write"], org=tenants.other_org)
    assert push(client, b"\xff not snappy at all", other).status_code == 400


def test_series_limit_refuses_new_series_while_existing_keep_flowing(client, tenants):
    limits_update(org=tenants.org, changes={"max_global_series_per_user": 2})
    token = tenants.token(["metrics:write"])
    t = now_ms()
    a, b, c = ([("__name__", "up"), ("job", j)] for j in "abc")
    assert push(client, write_request([(a, [(t, 1.0)]), (b, [(t, 1.0)])]), token).status_code == 204
    response = push(client, write_request([(a, [(t + 1, 2.0)]), (c, [(t + 1, 1.0)])]), token)
    assert response.status_code == 400
    assert "per_user_series_limit" in response.content.decode()
    assert response["X-Prometheus-Remote-Write-Samples-Written"] == "1"
    series, samples = stored(tenants.org)
    assert sorted(s["job"] for s in series.values()) == ["a", "b"]
    assert sum(len(v) for _, v in samples.values()) == 3


def test_per_metric_series_limit(client, tenants):
    limits_update(org=tenants.org, changes={"max_global_series_per_metric": 1})
    token = tenants.token(["metrics:write"])
    t = now_ms()
    body = write_request([([("__name__", "up"), ("job", "a")], [(t, 1.0)]),
                          ([("__name__", "up"), ("job", "b")], [(t, 1.0)]),
                          ([("__name__", "other")], [(t, 1.0)])])  # fmt: skip
    response = push(client, body, token)
    assert response.status_code == 400
    assert "per_metric_series_limit" in response.content.decode()
    assert response["X-Prometheus-Remote-Write-Samples-Written"] == "2"


def test_metadata_is_stored_per_org(client, tenants):
    from backend.metrics.selectors import metadata_list

    token = tenants.token(["metrics:write"])
    # WriteRequest.metadata = 3: MetricMetadata{type=1 (COUNTER), metric_family_name=2, help=4}
    meta = ip._field_bytes(3, b"\x08\x01" + ip._field_bytes(2, b"http_requests_total")
                           + ip._field_bytes(4, b"Requests."))  # fmt: skip
    body = ip.compress(meta)
    response = push(client, body, token)
    assert response.status_code == 204, response.content
    assert metadata_list(org_id=tenants.org.pk) == [
        ("http_requests_total", "counter", "Requests.", "")
    ]
    assert metadata_list(org_id=tenants.other_org.pk) == []


def test_metadata_with_a_nul_character_is_stored_with_a_replacement(client, tenants):
    from backend.metrics.selectors import metadata_list

    token = tenants.token(["metrics:write"])
    meta = ip._field_bytes(3, b"\x08\x02" + ip._field_bytes(2, b"temp")
                           + ip._field_bytes(4, b"Temp\x00erature."))  # fmt: skip
    response = push(client, ip.compress(meta), token)
    assert response.status_code == 204, response.content
    assert metadata_list(org_id=tenants.org.pk) == [("temp", "gauge", "Temp\ufffderature.", "")]


def test_outsider_writes_land_in_their_own_org_only(client, tenants):
    acme = tenants.token(["metrics:write"])
    globex = tenants.outsider_token(["metrics:write"])
    t = now_ms()
    push(client, write_request([([("__name__", "up"), ("job", "acme")], [(t, 1.0)])]), acme)
    push(client, write_request([([("__name__", "up"), ("job", "globex")], [(t, 1.0)])]), globex)
    acme_series, _ = stored(tenants.org)
    globex_series, _ = stored(tenants.other_org)
    assert [s["job"] for s in acme_series.values()] == ["acme"]
    assert [s["job"] for s in globex_series.values()] == ["globex"]
    # Reading acme's series ids under globex's org yields nothing.
    leaked = samples_for_series(org_id=tenants.other_org.pk, series=acme_series, start_ms=0,
                                end_ms=2**62)  # fmt: skip
    assert leaked == {}


def test_exemplars_are_stored_with_the_samples_and_served_by_query_exemplars(client, tenants):
    token = tenants.token(["metrics:write"])
    t = now_ms()
    labels = ip.encode_labels([("__name__", "http_requests_total"), ("job", "a")])
    sample = ip._field_bytes(2, b"\x09" + struct.pack("<d", 5.0) + b"\x10" + ip._varint(t))
    trace = "0af7651916cd43dd8448eb211c80319c"
    exemplar_labels = ip.encode_labels([("trace_id", trace)])
    exemplar = ip._field_bytes(
        3, exemplar_labels + b"\x11" + struct.pack("<d", 0.25) + b"\x18" + ip._varint(t)
    )
    body = ip.compress(ip._field_bytes(1, labels + sample + exemplar))
    for _ in range(2):  # a retry stores nothing twice
        response = push(client, body, token)
        assert response.status_code == 204, response.content
        assert response["X-Prometheus-Remote-Write-Exemplars-Written"] == "1"
    _, samples = stored(tenants.org, "http_requests_total")
    assert [v.tolist() for _, v in samples.values()] == [[5.0]]
    reader = bearer(tenants.token(["metrics:read"]))
    found = client.get(
        "/prometheus/api/v1/query_exemplars",
        {"query": "rate(http_requests_total[5m])", "start": t / 1000 - 60, "end": t / 1000 + 60},
        **reader,
    ).json()
    assert found == {
        "status": "success",
        "data": [
            {
                "seriesLabels": {"__name__": "http_requests_total", "job": "a"},
                "exemplars": [
                    {"labels": {"trace_id": trace}, "value": "0.25", "timestamp": t / 1000}
                ],
            }
        ],
    }
    # another org's reader sees none
    outsider = bearer(tenants.outsider_token(["metrics:read"]))
    other = client.get(
        "/prometheus/api/v1/query_exemplars", {"query": "http_requests_total"}, **outsider
    ).json()
    assert other == {"status": "success", "data": []}
    # an org that keeps no exemplars drops and counts them, keeping the samples
    limits_update(org=tenants.org, changes={"max_global_exemplars_per_user": 0})
    response = push(client, body, token)
    assert response["X-Prometheus-Remote-Write-Exemplars-Written"] == "0"
    assert rejections_get(org_id=tenants.org.pk)["metrics"]["exemplars_disabled"] == 1
