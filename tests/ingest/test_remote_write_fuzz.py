"""Random and mutated bodies through the whole HTTP receiver: never a 5xx."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench import istio_payloads as ip
from tests.helpers.credentials import bearer
from tests.helpers.mutations import mutated

pytestmark = pytest.mark.django_db

VALID = ip.build_requests(0, 1, ip.aligned_start_ms(1), n_series=20, samples_per_request=20)[0]
RAW = ip.build_uncompressed_requests(
    0, 1, ip.aligned_start_ms(1), n_series=20, samples_per_request=20
)[0][0]


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
