"""Random and mutated bodies through the whole HTTP receiver: never a 5xx."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench import istio_payloads as ip
from tests.conftest import bearer

pytestmark = pytest.mark.django_db

VALID = ip.build_requests(0, 1, ip.aligned_start_ms(1), n_series=20, samples_per_request=20)[0]
RAW = ip.build_uncompressed_requests(
    0, 1, ip.aligned_start_ms(1), n_series=20, samples_per_request=20
)[0][0]


@st.composite
def mutated(draw, base: bytes):
    data = bytearray(base)
    for _ in range(draw(st.integers(1, 8))):
        if not data:
            break
        i = draw(st.integers(0, len(data) - 1))
        action = draw(st.sampled_from(["flip", "delete", "insert", "truncate"]))
        if action == "flip":
            data[i] ^= draw(st.integers(1, 255))
        elif action == "delete":
            del data[i]
        elif action == "insert":
            data.insert(i, draw(st.integers(0, 255)))
        else:
            del data[i:]
    return bytes(data)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=st.one_of(st.binary(max_size=300), mutated(VALID), mutated(RAW).map(ip.compress)))
def test_receiver_never_fails_on_bad_input(client, tenants, body):
    token = tenants.token(["metrics:write"])
    response = client.post(
        "/api/v1/push",
        body,
        content_type="application/x-protobuf",
        HTTP_CONTENT_ENCODING="snappy",
        **bearer(token),
    )
    assert response.status_code in (204, 400, 413), response.content
    if response.status_code != 204:
        assert response.content.strip()  # a reason, always
