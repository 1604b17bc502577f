import itertools
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backend.tracing.critical_path import critical_path
from tests.helpers.credentials import bearer
from tests.helpers.otlp import TRACE
from tests.helpers.trace_queries import NOW, get


@dataclass
class S:
    span_id: bytes
    parent_span_id: bytes | None
    start_ns: int
    duration_ns: int


def b(n: int) -> bytes:
    return n.to_bytes(8, "big")


def test_the_last_finishing_child_and_the_parents_own_time():
    #  root 0..100: A 10..40, B 20..90 (B: C 30..50, D 55..85), E 92..99
    spans = [
        S(b(1), None, 0, 100),
        S(b(2), b(1), 10, 30),
        S(b(3), b(1), 20, 70),
        S(b(4), b(3), 30, 20),
        S(b(5), b(3), 55, 30),
        S(b(6), b(1), 92, 7),
    ]
    path = critical_path(spans)
    assert path == [
        (b(1), 0, 20),
        (b(3), 20, 30),
        (b(4), 30, 50),
        (b(3), 50, 55),
        (b(5), 55, 85),
        (b(3), 85, 90),
        (b(1), 90, 92),
        (b(6), 92, 99),
        (b(1), 99, 100),
    ]


def test_children_outliving_the_parent_are_clipped():
    spans = [S(b(1), None, 0, 50), S(b(2), b(1), 10, 100)]
    assert critical_path(spans) == [(b(1), 0, 10), (b(2), 10, 50)]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 1000), st.integers(0, 500), st.integers(0, 30)),
        min_size=1,
        max_size=30,
    )
)
def test_segments_tile_the_root_exactly(raw):
    spans = [S(b(1), None, 0, 1000)]
    for i, (start, duration, parent) in enumerate(raw, start=2):
        spans.append(S(b(i), b(min(parent, i - 1) or 1), start, duration))
    path = critical_path(spans)
    assert path[0][1] == 0 and path[-1][2] == 1000
    assert all(a[2] == c[1] for a, c in itertools.pairwise(path))  # contiguous
    assert all(start < end for _, start, end in path)


@pytest.mark.django_db
def test_critical_path_endpoint(api, traces, tenants):
    status, body = get(api, f"/jaeger/api/traces/{TRACE.hex()}/critical-path", traces)
    assert status == 200
    # root GET /cart (5 ms) with the SELECT child (5 ms, starting 1 µs later)
    assert [s["spanID"] for s in body["data"]] == ["eee19b7ec3c1b174", "eee19b7ec3c1b175"]
    assert body["data"][0]["startTime"] == NOW // 1000
    outsider = tenants.outsider_token(["traces:read"])
    response = api.get(f"/jaeger/api/traces/{'5' * 32}/critical-path", **bearer(outsider))
    assert response.status_code == 404
