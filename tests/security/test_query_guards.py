"""Issue 12's reproductions of query abuse, each answered with a 4xx before any work starts:
deep PromQL, allocations sized before numpy allocates, out-of-range times and durations,
parameters that used to raise past the views, regexes that would backtrack in PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from backend.metrics.promql.parse import MAX_QUERY_DEPTH, MAX_QUERY_LENGTH
from backend.tenancy.models import Scope
from backend.tenancy.services import limits_update
from backend.tracing.api.base import ReadTimedOut, bounded_reading
from tests.helpers.credentials import bearer
from tests.helpers.otlp import otlp_request, post_otlp, span
from tests.helpers.trace_queries import NOW

pytestmark = pytest.mark.django_db
PROM = "/prometheus/api/v1"


@pytest.fixture
def reader(tenants):
    return bearer(tenants.token([Scope.METRICS_READ]))


def prom(api, auth, path, method="get", **params):
    response = getattr(api, method)(f"{PROM}/{path}", params, **auth)
    return response.status_code, response.json()


@pytest.mark.parametrize(
    "query",
    [
        "(" * 600 + "1" + ")" * 600,  # 15 s of a worker before
        "(" * 10_000 + "1" + ")" * 10_000,  # a segfault before
        "+".join(["1"] * 6000),  # a segfault of the parser without a single bracket
        "sum(" * 200 + "x" + ")" * 200,
        "x" + "[5m:]" * 200,
    ],
    ids=["parens-600", "parens-10000", "binary-6000", "sum-200", "subquery-chain"],
)
@pytest.mark.parametrize("path", ["query", "query_range", "series", "query_exemplars"])
def test_deep_promql_is_refused_before_parsing(api, reader, path, query):
    params = {"query": query, "start": "0", "end": "60", "step": "15", "time": "60"}
    if path == "series":
        params = {"match[]": query}
    started = time.monotonic()
    status, body = prom(api, reader, path, method="post", **params)
    assert (status, body["errorType"]) == (400, "bad_data")
    assert "too complex" in body["error"] or "too long" in body["error"]
    assert time.monotonic() - started < 2


def test_long_promql_is_refused(api, reader):
    status, body = prom(api, reader, "query", method="post", query="x" * (MAX_QUERY_LENGTH + 1))
    assert status == 400 and str(MAX_QUERY_LENGTH) in body["error"]


def test_queries_up_to_the_limits_still_answer(api, reader):
    half = MAX_QUERY_DEPTH // 2
    query = "(" * (half - 1) + "+".join(["vector(1)"] * half) + ")" * (half - 1)
    status, body = prom(api, reader, "query", query=query, time="60")
    assert status == 200, body
    assert body["data"]["result"][0]["value"][1] == str(half)


def test_the_largest_accepted_shapes_cannot_crash_the_parser():
    # In a child process: if the parser could still overflow its stack, the child dies
    # with SIGSEGV and this test fails instead of the test run.
    code = (
        "from backend.metrics.promql.parse import parse_expr, MAX_QUERY_DEPTH as D\n"
        "for q in ['('*(D-1)+'1'+')'*(D-1), '+'.join(['1']*D), '-'*D+'1',"
        " 'sum('*(D-1)+'x'+')'*(D-1), 'x'+'[5m:]'*(D-1)]:\n"
        "    try: parse_expr(q)\n"
        "    except Exception as e: print(type(e).__name__)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.parametrize(
    "query",
    ["count_over_time(vector(1)[4d:10ms])", "count_over_time(vector(1)[1000d:1ms])"],
)
def test_subquery_grids_are_sized_before_allocating(api, reader, query):
    status, body = prom(api, reader, "query", query=query, time="400000")
    assert (status, body["errorType"]) == (422, "execution")
    assert "subquery would evaluate" in body["error"]


def test_the_subquery_step_limit_is_the_orgs(api, tenants, reader):
    limits_update(org=tenants.org, changes={"query_max_subquery_steps": 10})
    status, _ = prom(api, reader, "query", query="count_over_time(vector(1)[5m:1m])", time="600")
    assert status == 200
    status, body = prom(api, reader, "query", query="count_over_time(vector(1)[20m:1m])", time="1")
    assert status == 422 and "limit is 10" in body["error"]


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("query", {"query": "1", "time": "1e17"}),
        ("query", {"query": "1", "time": "-1e17"}),
        ("query", {"query": "x @ 1e300"}),
        ("query", {"query": "x @ -1e300"}),
        ("query", {"query": "x @ -100"}),
        ("query", {"query": "x offset 100000000y"}),
        ("query", {"query": "rate(x[100000000y])"}),
        ("query", {"query": "1", "timeout": "-5s"}),
        ("query", {"query": "1", "timeout": "1e300"}),
        ("query_range", {"query": "1", "start": "0", "end": "1e17", "step": "1"}),
        ("query_range", {"query": "1", "start": "0", "end": "60", "step": "9" * 400}),
        ("query_range", {"query": "1", "start": "0", "end": "60", "step": "99999999999y"}),
        ("metadata", {"limit": "abc"}),
        ("metadata", {"limit": "-1"}),
        ("metadata", {"metric": "up\x00"}),
        ("series", {"match[]": "up\x00"}),
        ("labels", {"match[]": 'up{a="\x00"}'}),
        ("label/__name__/values", {"start": "1e300"}),
    ],
)
def test_bad_parameters_are_400(api, reader, path, params):
    status, body = prom(api, reader, path, **params)
    assert (status, body["status"], body["errorType"]) == (400, "error", "bad_data"), body


# -- tracing ----------------------------------------------------------------------------------


@pytest.fixture
def long_attribute(client, tenants, traces):
    token = tenants.token(["traces:write"])
    request = otlp_request(
        [span("eee19b7ec3c1b199", name="slow", start=NOW, p="a" * 180)], service="regex"
    )
    assert post_otlp(client, request.SerializeToString(), token).status_code == 200
    from backend.pipeline.drain import org_drain

    org_drain(signal="traces", org_id=tenants.org.pk)
    return traces


@pytest.mark.parametrize(
    "pattern",
    ["(.*)(.*)(.*)(.*)(.*)\\5\\4\\3\\2\\1x", "(?=a)a", "(?<!b)a", "a(?!b)", "(a"],
)
def test_regexes_reaching_postgresql_are_re2(api, long_attribute, pattern):
    started = time.monotonic()
    response = api.get(
        "/jaeger/api/traces",
        {"service": "regex", "tagFilters": json.dumps([["p", "=~", pattern]])},
        **bearer(long_attribute),
    )
    assert response.status_code == 400, response.content
    assert "invalid regex" in response.json()["errors"][0]["msg"]
    assert time.monotonic() - started < 2


def test_an_re2_regex_still_filters(api, long_attribute):
    response = api.get(
        "/jaeger/api/traces",
        {"service": "regex", "tagFilters": json.dumps([["p", "=~", "a{180}"]])},
        **bearer(long_attribute),
    )
    assert response.status_code == 200
    assert len(response.json()["data"]) == 1


def test_trace_reads_have_a_statement_timeout():
    from django.db import connection

    started = time.monotonic()
    with (
        pytest.raises(ReadTimedOut),
        bounded_reading(timeout_seconds=0.2),
        connection.cursor() as cur,
    ):
        cur.execute("SELECT pg_sleep(5)")
    assert time.monotonic() - started < 3


def test_trace_api_reads_run_read_only_with_the_orgs_timeout(api, tenants, traces):
    # The org's query timeout reaches PostgreSQL: a 1 s timeout cancels the (deliberately
    # slow) statement that the search sends when its window is huge and no index helps.
    limits_update(org=tenants.org, changes={"query_timeout_seconds": 1})
    from django.db import connection

    from backend.tracing.api import jaeger

    seen = {}

    class Probe(jaeger.ServicesView):
        def get(self, request):
            with connection.cursor() as cur:
                cur.execute("SHOW statement_timeout")
                seen["timeout"] = cur.fetchone()[0]
                cur.execute("SHOW transaction_read_only")
                seen["read_only"] = cur.fetchone()[0]
            return super().get(request)

    from rest_framework.test import APIRequestFactory

    request = APIRequestFactory().get("/jaeger/api/services", **bearer(traces))
    assert Probe.as_view()(request).status_code == 200
    assert seen == {"timeout": "1s", "read_only": "on"}


@pytest.mark.parametrize(
    ("url", "params"),
    [
        ("/jaeger/api/traces", {"service": "checkout", "lookback": "9" * 400}),
        ("/jaeger/api/traces", {"service": "checkout", "minDuration": "9" * 400}),
        ("/jaeger/api/traces", {"service": "checkout", "maxDuration": "99999999h"}),
        ("/jaeger/api/traces", {"service": "checkout", "start": "9" * 30}),
        ("/jaeger/api/traces", {"service": "checkout", "limit": "-1"}),
        ("/jaeger/api/traces", {"service": "check\x00out"}),
        ("/jaeger/api/traces", {"service": "checkout", "tags": '{"a": "\\u0000"}'}),
        ("/jaeger/api/dependencies", {"endTs": "9" * 400}),
        ("/jaeger/api/dependencies", {"lookback": "-5"}),
        ("/jaeger/api/operations", {"service": "\x00"}),
        (
            "/jaeger/api/v3/traces",
            {
                "query.service_name": "checkout",
                "query.start_time_min": "2020-01-01T00:00:00Z",
                "query.start_time_max": "9999-01-01T00:00:00Z",
            },
        ),
        (
            "/jaeger/api/v3/traces",
            {
                "query.service_name": "checkout",
                "query.start_time_min": "2020-01-01T00:00:00Z",
                "query.start_time_max": "2021-01-01T00:00:00Z",
                "query.num_traces": "-1",
            },
        ),
        ("/zipkin/api/v2/traces", {"serviceName": "checkout", "limit": "-1"}),
        ("/zipkin/api/v2/traces", {"serviceName": "checkout", "minDuration": "9" * 400}),
        ("/zipkin/api/v2/traces", {"serviceName": "check\x00out"}),
        ("/zipkin/api/v2/spans", {"serviceName": "\x00"}),
        ("/zipkin/api/v2/dependencies", {"endTs": "abc"}),
    ],
)
def test_bad_tracing_parameters_are_400(api, traces, url, params):
    response = api.get(url, params, **bearer(traces))
    assert response.status_code == 400, response.content


def test_nul_in_a_path_is_400(api, traces):
    assert api.get("/jaeger/api/services/a%00b/operations", **bearer(traces)).status_code == 400


def test_prometheus_metadata_reads_run_read_only_with_the_orgs_timeout(tenants, reader):
    from django.db import connection
    from rest_framework.test import APIRequestFactory

    from backend.metrics import prometheus_api

    limits_update(org=tenants.org, changes={"query_timeout_seconds": 2})
    seen = {}

    class Probe(prometheus_api.LabelsView):
        def handle(self):
            with connection.cursor() as cur:
                cur.execute("SHOW statement_timeout")
                seen["timeout"] = cur.fetchone()[0]
                cur.execute("SHOW transaction_read_only")
                seen["read_only"] = cur.fetchone()[0]
            return super().handle()

    request = APIRequestFactory().get(f"{PROM}/labels", **reader)
    assert Probe.as_view()(request).status_code == 200
    assert seen == {"timeout": "2s", "read_only": "on"}
