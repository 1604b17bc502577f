"""Fuzz every HTTP route of the URL map (not only the wire decoders) with a valid member's
credentials: hypothesis makes the query strings, headers and bodies (random bytes, huge
numbers, NUL, deep JSON, bad UTF-8, YAML alias bombs, wrong content types and encodings).

For each answer: no 5xx; no answer later than the org's query timeout plus a margin (a bound
that catches a hang, not a speed goal); and the test process (the server here) grows by less
than a bounded amount over the whole route's run (peak RSS).

``make test`` runs a few derandomized examples per route (``CANOPY_FUZZ_EXAMPLES``, default
4); ``make reliability`` runs many more with fresh randomness."""

from __future__ import annotations

import json
import os
import resource
import time
from urllib.parse import quote

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backend.tenancy.models import ALL_SCOPES
from backend.tenancy.services import limits_update
from tests.helpers.credentials import bearer
from tests.reliability.http import send
from tests.reliability.urlmap import ROUTES

pytestmark = [pytest.mark.django_db, pytest.mark.reliability]

EXAMPLES = int(os.environ.get("CANOPY_FUZZ_EXAMPLES", "4"))
DERANDOMIZE = os.environ.get("CANOPY_FUZZ_RANDOM", "") != "1"
QUERY_TIMEOUT_S = 5
HANG_MARGIN_S = 10
MAX_RSS_GROWTH_MB = 300

# Every parameter name the APIs read, plus a few they do not.
PARAMS = [
    "query",
    "time",
    "start",
    "end",
    "step",
    "timeout",
    "match[]",
    "limit",
    "limit_per_metric",
    "metric",
    "org",
    "service",
    "operation",
    "operations",
    "tags",
    "tagFilters",
    "minDuration",
    "maxDuration",
    "lookback",
    "endTs",
    "limit",
    "num_traces",
    "query.service_name",
    "query.operation_name",
    "query.start_time_min",
    "query.start_time_max",
    "query.duration_min",
    "query.duration_max",
    "query.num_traces",
    "query.attributes",
    "serviceName",
    "spanName",
    "annotationQuery",
    "remoteServiceName",
    "label_names[]",
    "selector",
    "count",
    "wait",
    "revision",
    "clusters",
    "namespace",
    "group",
    "name",
    "kind",
    "page",
    "sort",
    "format",
    "next",
    "email",
    "role",
    "scopes",
    "sampling",
    "traceID",
    "spanKind",
    "type",
    "q",
    "x",
]
NASTY = [
    "",
    "\x00",
    "a\x00b",
    "%00",
    "-1",
    "0",
    "1e17",
    "1e300",
    "-1e300",
    "1e309",
    "nan",
    "NaN",
    "inf",
    "-Inf",
    "9" * 400,
    "-" + "9" * 40,
    "0x1p1023",
    "2147483648",
    "18446744073709551616",
    "1.5",
    "1d",
    "100000000y",
    "-5m",
    "10ms",
    "[",
    "]",
    "{",
    "}",
    '"',
    "'",
    "\\",
    "%",
    "%ff%fe",
    "\u202e",
    "\ud7ff",
    "é",
    "😀" * 20,
    "(" * 600 + "1" + ")" * 600,
    "up",
    '{__name__=~".+"}',
    "up[100000000y]",
    "count_over_time(vector(1)[4d:10ms])",
    "up @ 1e300",
    "up offset 100000000y",
    '[["p","=~","(.*)(.*)\\\\1x"]]',
    "a" * 5000,
    "true",
    "null",
    "[]",
    "{}",
    "../../etc/passwd",
    "<script>x</script>",
    "' OR 1=1 --",
]
CONTENT_TYPES = [
    "application/json",
    "application/x-www-form-urlencoded",
    "multipart/form-data",
    "multipart/form-data; boundary=x",
    "application/x-protobuf",
    "application/yaml",
    "text/plain",
    "text/plain; charset=utf-16",
    "application/json; charset=latin-1",
    "application/octet-stream",
    "",
    "garbage",
    "application/json; charset=nope",
]
ENCODINGS = ["", "gzip", "snappy", "zstd", "deflate", "br", "identity", "gzip, gzip", "x"]


def _deep_json(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def _yaml_bomb() -> bytes:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i, name in enumerate("bcdefghi"):
        prev = "abcdefghi"[i]
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    return "\n".join(lines).encode()


values = st.one_of(
    st.sampled_from(NASTY),
    st.text(max_size=40),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)
bodies = st.one_of(
    st.binary(max_size=2048),
    st.builds(_deep_json, st.sampled_from([10, 1000, 100_000])),
    st.just(_yaml_bomb()),
    st.just(b"\xff\xfe\x00bad utf-8 \xc3\x28"),
    st.just(b'{"n": 1' + b"0" * 5000 + b"}"),
    st.just(b'{"name": "\\u0000", "email": "\\ud800@x", "role": 1e400, "scopes": [[[]]]}'),
    st.dictionaries(st.sampled_from(PARAMS), values, max_size=5).map(
        lambda d: json.dumps(d).encode()
    ),
    st.dictionaries(st.sampled_from(PARAMS), values, max_size=5).map(
        lambda d: "&".join(f"{quote(k)}={quote(v, safe='')}" for k, v in d.items()).encode()
    ),
)


@st.composite
def fuzzed_request(draw, route, base_url):
    method = draw(st.sampled_from(route.methods))
    path, _, query = base_url.partition("?")
    pairs = draw(st.lists(st.tuples(st.sampled_from(PARAMS), values), max_size=6))
    parts = [query] if query and draw(st.booleans()) else []
    parts += [f"{quote(k)}={quote(v, safe='', errors='surrogatepass')}" for k, v in pairs]
    if draw(st.booleans()):
        # raw, undecodable or badly escaped bytes in the query string
        parts.append(draw(st.sampled_from(["%", "%zz", "a=%ff%fe", "b=\udcff", "&&==&", "c=%00"])))
    headers = {}
    content_type = draw(st.sampled_from(CONTENT_TYPES))
    encoding = draw(st.sampled_from(ENCODINGS))
    if encoding:
        headers["HTTP_CONTENT_ENCODING"] = encoding
    if draw(st.booleans()):
        headers["HTTP_ACCEPT"] = draw(
            st.sampled_from(["*/*", "text/html", "application/openmetrics-text", "\x00", "a" * 300])
        )
    if draw(st.booleans()):
        headers["HTTP_X_REQUEST_ID"] = draw(st.text(max_size=300))
    if draw(st.booleans()):
        headers["HTTP_X_SCOPE_ORGID"] = draw(values)
    body = b"" if method in ("GET", "DELETE") and draw(st.booleans()) else draw(bodies)
    return method, path, "&".join(parts), body, content_type, headers


def _fuzzed_routes():
    return [pattern for pattern, route in sorted(ROUTES.items()) if route.fuzz]


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _fuzz(pattern, route, base_url, client, token) -> int:
    """Run the route's examples; returns how many requests were sent."""
    seen = []

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=DERANDOMIZE,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(fuzzed_request(route, base_url))
    def check(request):
        method, path, query, body, content_type, headers = request
        extra = {**bearer(token), **headers}
        if query:
            extra["QUERY_STRING"] = query.encode("utf-8", "surrogateescape").decode("latin-1")
        started = time.monotonic()
        response = send(client, method, path, body, content_type, **extra)
        elapsed = time.monotonic() - started
        seen.append(response.status_code)
        described = f"{method} {path}?{query!r} {content_type!r} {headers!r} body={body[:200]!r}"
        assert response.status_code < 500, (
            f"{described}\n-> {response.status_code}\n{response.fault}"
        )
        assert elapsed < QUERY_TIMEOUT_S + HANG_MARGIN_S, f"{described}\n-> took {elapsed:.1f} s"

    check()
    return len(seen)


def test_fuzz_every_route(victim, tenants):
    """One run over every route of the table (the victim's data set up once): each route gets
    its own examples, and every failing route is reported, not only the first."""
    limits_update(org=tenants.org, changes={"query_timeout_seconds": QUERY_TIMEOUT_S})
    token = tenants.token(sorted(ALL_SCOPES))
    client = Client(raise_request_exception=False)
    client.force_login(tenants.owner)
    rss_before = _rss_mb()
    failures, sent = [], {}
    for pattern in _fuzzed_routes():
        route = ROUTES[pattern]
        base_url = route.url(victim) if route.url else "/" + pattern
        try:
            sent[pattern] = _fuzz(pattern, route, base_url, client, token)
        except AssertionError as failure:
            failures.append(f"[{pattern}] {failure}")
    assert not failures, f"{len(failures)} routes failed:\n\n" + "\n\n".join(failures)
    assert len(sent) == len(_fuzzed_routes()) and all(sent.values())
    growth = _rss_mb() - rss_before
    assert growth < MAX_RSS_GROWTH_MB, f"peak RSS grew {growth:.0f} MB over the fuzz run"
