"""Random and mutated bodies through the OTLP and Zipkin receivers: never a 5xx."""

import gzip
import json
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers.credentials import bearer
from tests.helpers.mutations import mutated
from tests.helpers.otlp import ENVOY_ZIPKIN, otlp_request, span

pytestmark = pytest.mark.django_db

OTLP = otlp_request([span("eee19b7ec3c1b174", **{"http.status_code": 200})]).SerializeToString()
_zipkin = json.loads(json.dumps(ENVOY_ZIPKIN))
for i, z in enumerate(_zipkin):
    z["timestamp"] = time.time_ns() // 1000 - 10**6 + i
    for a in z.get("annotations", []):
        a["timestamp"] = z["timestamp"]
ZIPKIN = json.dumps(_zipkin).encode()

FUZZ = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@FUZZ
@given(
    body=st.one_of(st.binary(max_size=300), mutated(OTLP)),
    gz=st.booleans(),
    content_type=st.sampled_from(["application/x-protobuf", "application/json"]),
)
def test_otlp_receiver_never_fails(client, tenants, body, gz, content_type):
    extra = {"HTTP_CONTENT_ENCODING": "gzip"} if gz else {}
    response = client.post(
        "/v1/traces",
        gzip.compress(body) if gz else body,
        content_type=content_type,
        **bearer(tenants.token(["traces:write"])),
        **extra,
    )
    assert response.status_code in (200, 400, 413, 415), response.content


@FUZZ
@given(body=st.one_of(st.binary(max_size=300), mutated(ZIPKIN)))
def test_zipkin_receiver_never_fails(client, tenants, body):
    response = client.post(
        "/api/v2/spans",
        body,
        content_type="application/json",
        **bearer(tenants.token(["traces:write"])),
    )
    assert response.status_code in (202, 400, 413, 415), response.content
