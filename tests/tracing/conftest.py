"""Fixtures of the tracing tests."""

from __future__ import annotations

import pytest

from backend.pipeline.drain import org_drain
from tests.helpers.otlp import otlp_request, post_otlp, span
from tests.helpers.trace_queries import NOW


@pytest.fixture
def traces(client, tenants):
    token = tenants.token(["traces:write"])
    request = otlp_request(
        [
            span("eee19b7ec3c1b174", name="GET /cart", start=NOW, **{"http.status_code": 200}),
            span(
                "eee19b7ec3c1b175",
                "eee19b7ec3c1b174",
                name="SELECT",
                start=NOW + 1000,
                status=2,
                **{"db.system": "postgresql"},
            ),
        ],
        service="checkout",
    )
    assert post_otlp(client, request.SerializeToString(), token).status_code == 200
    org_drain(signal="traces", org_id=tenants.org.pk)
    # the outsider's org has a trace too, which must never show in acme's answers
    other = otlp_request(
        [span("aaa19b7ec3c1b174", name="secret-op", start=NOW)], service="globex-billing"
    )
    post_otlp(client, other.SerializeToString(), tenants.outsider_token(["traces:write"]))
    org_drain(signal="traces", org_id=tenants.other_org.pk)
    return tenants.token(["traces:read"])
