"""Canopy's PromQL against a real Prometheus (Debian's 2.42) over the same data.

One Prometheus per module gets the dataset of ``promql_dataset.py`` through its remote-write
receiver; each test that needs Canopy creates an org, pushes the same bodies to ``/api/v1/push``
on the live server and drains the outbox (pytest-django flushes the database after every test
that uses ``live_server``, so the Canopy side is loaded per test: it takes under a second).

Every expression of ``promql_expressions.VALID`` is then asked of both through the HTTP API
(Prometheus at ``/api/v1/...``, Canopy at ``/prometheus/api/v1/...`` with a ``metrics:read``
token) as instant queries at a few times (the end, inside a gap, just after staleness markers,
between two scrapes) and as range queries (30 s steps; 60 s steps from an unaligned start).
Answers must agree on the status and ``errorType``, the ``resultType``, the set of series, their
timestamps and their values (relative tolerance 1e-6, absolute 1e-9 near zero; NaN and
infinities exactly). Results are compared as sets of series, except that the values of an
instant ``sort``/``sort_desc`` must come in the same order. Every mismatch is collected and
reported at the end of a test, not only the first one.
"""

from __future__ import annotations

import math
import re
import struct
import threading
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
import requests

from backend.metrics.labels import Matcher
from backend.metrics.selectors import samples_for_series
from backend.metrics.storage.reader import series_match
from backend.pipeline.drain import org_drain
from backend.tenancy.services import limits_update, org_create, token_create, user_get_or_create
from tests.compat import promql_dataset as ds
from tests.compat import promql_expressions as px
from tests.compat.prometheus_harness import PrometheusServer, post_remote_write

pytestmark = pytest.mark.compat

ORG_SLUG = "promql-compat"
REL_TOL = 1e-6
ABS_TOL = 1e-9
WORKERS = 4  # expressions asked at once (each worker asks both servers in turn)
MAX_REPORTED = 60  # mismatch lines shown in a failure message
GET_POST_EXPRESSIONS = [
    'sum by (destination_workload) (rate(istio_requests_total{reporter="destination"}[5m]))',
    "histogram_quantile(0.9, sum by (le) (rate(istio_request_duration_milliseconds_bucket[5m])))",
    "temperature_celsius",
    "time()",
    "sum(",
]


# --- talking to the two servers ---------------------------------------------------------------


@dataclass
class Answer:
    status: int
    body: Any  # the decoded JSON, or None
    text: str

    @property
    def error_type(self) -> str | None:
        return self.body.get("errorType") if isinstance(self.body, dict) else None

    @property
    def error(self) -> str:
        """The error message, or a short description of the answer."""
        if isinstance(self.body, dict) and self.body.get("error"):
            return str(self.body["error"])
        if isinstance(self.data, dict) and "resultType" in self.data:
            result = self.data.get("result")
            size = len(result) if self.data["resultType"] in ("vector", "matrix") else 1
            return f"{self.data['resultType']} of {size}"
        return self.text[:200].replace("\n", " ")

    @property
    def data(self) -> Any:
        return self.body.get("data") if isinstance(self.body, dict) else None


class Target:
    """A Prometheus-compatible HTTP API: ``base`` ends with ``/api/v1``."""

    def __init__(self, name: str, base: str, headers: Mapping[str, str] | None = None):
        self.name = name
        self.base = base
        self.headers = dict(headers or {})
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._lock = threading.Lock()

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            session.headers.update(self.headers)
            with self._lock:
                self._sessions.append(session)
        return session

    def close(self) -> None:
        """Close the kept-alive connections (a live server thread holds a database connection
        for as long as its client's connection stays open)."""
        with self._lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()

    def call(
        self, endpoint: str, params: Mapping[str, str], method: str = "GET", **kwargs: Any
    ) -> Answer:
        url = f"{self.base}/{endpoint}"
        if method == "GET":
            r = self._session().get(url, params=params, timeout=120, **kwargs)
        else:  # a form body, like Grafana sends
            r = self._session().post(url, data=params, timeout=120, **kwargs)
        try:
            body = r.json()
        except ValueError:
            body = None
        return Answer(r.status_code, body, r.text)

    def instant(self, expr: str, t_ms: int, method: str = "GET") -> Answer:
        return self.call("query", {"query": expr, "time": ds.fmt_seconds(t_ms)}, method)

    def range(self, expr: str, start_ms: int, end_ms: int, step_ms: int) -> Answer:
        params = {
            "query": expr,
            "start": ds.fmt_seconds(start_ms),
            "end": ds.fmt_seconds(end_ms),
            "step": ds.fmt_seconds(step_ms),
        }
        return self.call("query_range", params)


# --- comparing answers ------------------------------------------------------------------------

_SPECIAL = {"NaN", "+Inf", "-Inf"}


def same_value(a: Any, b: Any) -> bool:
    if a == b:
        return True
    if not isinstance(a, str) or not isinstance(b, str) or a in _SPECIAL or b in _SPECIAL:
        return False
    try:
        x, y = float(a), float(b)
    except ValueError:
        return False
    if math.isnan(x) or math.isnan(y) or math.isinf(x) or math.isinf(y):
        return False  # spelled differently from Prometheus ("nan", "inf")
    return abs(x - y) <= ABS_TOL or abs(x - y) <= REL_TOL * max(abs(x), abs(y))


def _ts_ms(t: Any) -> int | None:
    try:
        return round(float(t) * 1000)
    except (TypeError, ValueError):
        return None


def _fmt_labels(key: tuple[tuple[str, str], ...]) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in key) + "}"


def _key(metric: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(metric, dict):
        raise TypeError(f"metric is not an object: {metric!r}")
    return tuple(sorted(metric.items()))


def _index(result: Any, field: str) -> dict[tuple[tuple[str, str], ...], Any]:
    if not isinstance(result, list):
        raise TypeError(f"result is not a list: {str(result)[:100]}")
    out: dict[tuple[tuple[str, str], ...], Any] = {}
    for item in result:
        key = _key(item["metric"])
        if key in out:
            raise ValueError(f"series {_fmt_labels(key)} appears twice")
        out[key] = item[field]
    return out


def _compare_points(key, prom_points: list, canopy_points: list) -> list[str]:
    """Both are lists of ``[t, "v"]``."""
    p = {_ts_ms(t): v for t, v in prom_points}
    c = {_ts_ms(t): v for t, v in canopy_points}
    out = []
    missing = sorted(set(p) - set(c))
    extra = sorted(set(c) - set(p))
    if missing or extra:
        out.append(
            f"series {_fmt_labels(key)}: timestamps differ: only in prometheus "
            f"{[ds.fmt_seconds(t) for t in missing[:4]]}{'...' if len(missing) > 4 else ''} "
            f"({len(missing)}), only in canopy "
            f"{[ds.fmt_seconds(t) for t in extra[:4] if t is not None]}"
            f"{'...' if len(extra) > 4 else ''} ({len(extra)})"
        )
    diffs = [t for t in sorted(set(p) & set(c)) if not same_value(p[t], c[t])]
    if diffs:
        t = diffs[0]
        out.append(
            f"series {_fmt_labels(key)} at {ds.fmt_seconds(t)}: prometheus={p[t]} "
            f"canopy={c[t]} ({len(diffs)} of {len(p)} points differ)"
        )
    return out


def compare(prom: Answer, canopy: Answer, *, ordered: bool = False) -> list[str]:
    """What differs between the two answers (empty when they agree)."""
    if prom.status != 200 or canopy.status != 200:
        if (prom.status, prom.error_type) == (canopy.status, canopy.error_type):
            return []
        return [
            f"status: prometheus {prom.status} {prom.error_type} ({prom.error}); "
            f"canopy {canopy.status} {canopy.error_type} ({canopy.error})"
        ]
    try:
        return _compare_data(prom.data, canopy.data, ordered)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        return [f"malformed canopy answer ({exc}): {canopy.text[:300]}"]


def _compare_data(pd: dict, cd: Any, ordered: bool) -> list[str]:
    if not isinstance(cd, dict):
        return [f"no data object in canopy's answer: {cd!r}"[:300]]
    if pd["resultType"] != cd.get("resultType"):
        return [f"resultType: prometheus {pd['resultType']}, canopy {cd.get('resultType')}"]
    kind, pr, cr = pd["resultType"], pd["result"], cd["result"]
    if kind in ("scalar", "string"):
        if _ts_ms(pr[0]) != _ts_ms(cr[0]) or not same_value(pr[1], cr[1]):
            return [f"{kind}: prometheus {pr}, canopy {cr}"]
        return []
    field = "value" if kind == "vector" else "values"
    p, c = _index(pr, field), _index(cr, field)
    out = []
    for key in sorted(set(p) - set(c))[:5]:
        out.append(f"missing in canopy: {_fmt_labels(key)} {str(p[key])[:80]}")
    for key in sorted(set(c) - set(p))[:5]:
        out.append(f"only in canopy: {_fmt_labels(key)} {str(c[key])[:80]}")
    if len(set(p) ^ set(c)) > 10:
        out.append(
            f"({len(set(p) - set(c))} series missing, {len(set(c) - set(p))} extra in canopy; "
            f"prometheus has {len(p)})"
        )
    for key in sorted(set(p) & set(c)):
        points = (lambda x: [x]) if kind == "vector" else (lambda x: x)
        out += _compare_points(key, points(p[key]), points(c[key]))
    if ordered and kind == "vector" and not out:
        # Same series and values: now the order (ties may come in any order).
        p_values = [item["value"][1] for item in pr]
        c_values = [item["value"][1] for item in cr]
        if not all(same_value(a, b) for a, b in zip(p_values, c_values, strict=True)):
            out.append(f"order: prometheus {p_values}, canopy {c_values}")
    return out


@dataclass
class Report:
    """Mismatches of many comparisons, for one assertion at the end of a test."""

    comparisons: int = 0
    lines: list[str] = field(default_factory=list)
    failed_expressions: dict[str, int] = field(default_factory=dict)  # expression -> count

    def add(self, expr: str, where: str, mismatches: Iterable[str]) -> None:
        self.comparisons += 1
        mismatches = list(mismatches)
        if mismatches:
            self.failed_expressions[expr] = self.failed_expressions.get(expr, 0) + 1
            self.lines.append(f"[{where}] {expr}")
            self.lines += [f"    {m}" for m in mismatches[:6]]
            if len(mismatches) > 6:
                self.lines.append(f"    ... {len(mismatches) - 6} more")

    def check(self) -> None:
        if not self.failed_expressions:
            return
        n_exprs = len(self.failed_expressions)
        head = (
            f"{n_exprs} expressions differ from Prometheus "
            f"({sum(self.failed_expressions.values())} of {self.comparisons} comparisons):"
        )
        shown = self.lines[:MAX_REPORTED]
        more = len(self.lines) - len(shown)
        tail = [f"... {more} more lines"] if more > 0 else []
        names = sorted(self.failed_expressions)
        summary = ["", "expressions with mismatches:"] + [f"  {e}" for e in names[:150]]
        if len(names) > 150:
            summary.append(f"  ... and {len(names) - 150} more")
        pytest.fail("\n".join([head, *shown, *tail, *summary]), pytrace=False)


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def timeline() -> ds.Timeline:
    return ds.Timeline(ds.default_end_ms())


@pytest.fixture(scope="module")
def dataset(timeline) -> list[ds.Series]:
    return ds.build_dataset(timeline.end_ms)


@pytest.fixture(scope="module")
def bodies(dataset) -> list[bytes]:
    return ds.remote_write_bodies(dataset)


_LOG_TROUBLE = re.compile(r"level=error|out.of.order|out.of.bounds|too old|duplicate", re.I)


@pytest.fixture(scope="module")
def prometheus(prometheus_binary, bodies):
    # scrape_interval also sets the evaluation interval, which is what a subquery without a
    # step (``[10m:]``) uses: 1m, Prometheus's default (the harness's own default is 1s).
    with PrometheusServer(
        binary=prometheus_binary,
        remote_write_receiver=True,
        scrape_self=False,
        scrape_interval="1m",
    ) as prom:
        for i, body in enumerate(bodies):
            r = prom.remote_write(body, check=False)
            assert r.status_code == 204, f"request {i}: {r.status_code} {r.text}"
        trouble = [line for line in prom.log_tail(10_000).splitlines() if _LOG_TROUBLE.search(line)]
        assert not trouble, "\n".join(trouble)
        target = Target("prometheus", f"{prom.url}/api/v1")
        yield target
        target.close()


@dataclass
class Canopy:
    target: Target
    org: Any
    read_token: str
    base: str


@pytest.fixture
def canopy(live_server, bodies) -> Iterator[Canopy]:
    """An org holding the dataset, and Canopy's Prometheus API authenticated for it."""
    owner = user_get_or_create(username="promql-compat")
    org = org_create(slug=ORG_SLUG, name="PromQL compatibility", owner=owner)
    # The dataset's first samples are 50 minutes old (older than an hour by the end of a slow
    # run), and 50,000 samples arrive at once.
    limits_update(
        org=org,
        changes={
            "out_of_order_time_window_seconds": 6 * 3600,
            "ingestion_rate": 1_000_000,
            "ingestion_burst_size": 10_000_000,
        },
    )  # (limits_update clears the tenancy caches itself)
    _, write_token = token_create(org=org, name="remote-write", scopes=["metrics:write"])
    _, read_token = token_create(org=org, name="grafana", scopes=["metrics:read"])
    with requests.Session() as session:
        for i, body in enumerate(bodies):
            r = post_remote_write(
                f"{live_server.url}/api/v1/push",
                body,
                headers={"Authorization": f"Bearer {write_token}"},
                session=session,
            )
            assert r.status_code == 204, f"push {i}: {r.status_code} {r.text}"
    while org_drain(signal="metrics", org_id=org.pk):
        pass
    base = f"{live_server.url}/prometheus/api/v1"
    target = Target("canopy", base, {"Authorization": f"Bearer {read_token}"})
    yield Canopy(target, org, read_token, base)
    target.close()


def _require_api(canopy: Canopy) -> None:
    """Fail at once, with one line, when Canopy's query API is not there at all."""
    answer = canopy.target.call("query", {"query": "1"})
    if answer.status in (404, 405, 501):
        pytest.fail(
            f"{canopy.base}/query answers HTTP {answer.status}: Canopy's Prometheus query API "
            "is not available",
            pytrace=False,
        )


def _run(jobs: list, fn) -> list:
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        return list(pool.map(fn, jobs))


# --- tests ------------------------------------------------------------------------------------


def test_canopy_stores_the_dataset_exactly_with_staleness_markers(canopy, dataset):
    """What the comparisons stand on: every sample pushed is readable, stale markers keep their
    bit pattern (0x7ff0000000000002, not just any NaN), infinities stay infinite."""
    org_id = canopy.org.pk
    stored = series_match(org_id=org_id, matchers=[Matcher("__name__", "=~", ".+")])
    assert len(stored) == len(dataset)
    samples = samples_for_series(org_id=org_id, series=stored, start_ms=0, end_ms=2**62)
    by_labels = {tuple(sorted(labels.items())): sid for sid, labels in stored.items()}
    stale_seen = 0
    problems = []
    for series in dataset:
        key = tuple(sorted(series.labels.items()))
        sid = by_labels.get(key)
        if sid is None:
            problems.append(f"missing series {_fmt_labels(key)}")
            continue
        ts, values = samples[sid]
        want_ts = np.array([t for t, _ in series.samples], dtype=np.int64)
        want = np.array([v for _, v in series.samples], dtype=np.float64)
        if not np.array_equal(ts, want_ts):
            problems.append(f"{_fmt_labels(key)}: timestamps differ")
            continue
        want_stale = want.view(np.uint64) == ds.STALE_NAN_BITS
        got_stale = values.view(np.uint64) == ds.STALE_NAN_BITS
        stale_seen += int(got_stale.sum())
        if not np.array_equal(want_stale, got_stale):
            problems.append(f"{_fmt_labels(key)}: stale markers at {np.flatnonzero(want_stale)}, "
                            f"stored at {np.flatnonzero(got_stale)}")  # fmt: skip
        if not np.array_equal(want, values, equal_nan=True):
            problems.append(f"{_fmt_labels(key)}: values differ")
    assert not problems, "\n".join(problems[:30])
    expected_stale = sum(ds.is_stale_nan(v) for s in dataset for _, v in s.samples)
    assert stale_seen == expected_stale > 0
    assert struct.pack("<d", ds.STALE_NAN) == struct.pack("<Q", ds.STALE_NAN_BITS)


def test_prometheus_answers_every_expression_of_the_suite(prometheus, timeline):
    """The suite's own check (no Canopy involved): every valid expression evaluates in
    Prometheus, returns data somewhere unless it is empty on purpose, and the invalid ones fail
    the way the suite says."""
    problems, never_empty, empty = [], 0, set()
    ranges = timeline.ranges().values()

    def ask(raw: str) -> tuple[str, list[str], list[bool]]:
        expr, out, sizes = px.render(raw, timeline), [], []
        kinds = set()
        for t in timeline.instant_times().values():
            a = prometheus.instant(expr, t)
            if a.status != 200:
                out.append(f"instant at {ds.fmt_seconds(t)}: {a.status} {a.error}")
                continue
            kind = a.data["resultType"]
            kinds.add(kind)
            sizes.append(bool(a.data["result"]) if kind in ("vector", "matrix") else True)
        for start, end, step in ranges:
            a = prometheus.range(expr, start, end, step)
            if kinds & {"matrix", "string"}:  # not allowed in range queries
                if (a.status, a.error_type) != (400, "bad_data"):
                    out.append(f"range query: {a.status} {a.error_type}, expected bad_data")
            elif a.status != 200:
                out.append(f"range query step {step}: {a.status} {a.error}")
            else:
                sizes.append(bool(a.data["result"]))
        return raw, out, sizes

    for raw, out, sizes in _run(px.VALID, ask):
        problems += [f"{raw}: {line}" for line in out]
        if not any(sizes):
            empty.add(raw)
        elif all(sizes):
            never_empty += 1
    assert not problems, "\n".join(problems)
    assert empty == px.EXPECTED_EMPTY, f"unexpectedly empty: {sorted(empty - px.EXPECTED_EMPTY)}"
    assert len(px.VALID) >= 180 and len(set(px.VALID)) == len(px.VALID)
    # Most expressions return data at every evaluation time (the rest lose it in the gap or
    # after the staleness markers, which is the point of those times).
    assert never_empty / len(px.VALID) >= 0.9, never_empty

    for expr, status, error_type in [(e, 400, "bad_data") for e in px.PARSE_ERRORS] + [
        (e, 422, "execution") for e in px.EXECUTION_ERRORS
    ]:
        a = prometheus.instant(expr, timeline.end_ms)
        assert (a.status, a.error_type) == (status, error_type), (expr, a.status, a.error)


def test_instant_queries_match_prometheus(prometheus, canopy, timeline):
    _require_api(canopy)
    report = Report()
    jobs = [
        (raw, name, t)
        for raw in px.VALID
        for name, t in timeline.instant_times().items()
    ]  # fmt: skip

    def ask(job):
        raw, name, t = job
        expr = px.render(raw, timeline)
        prom, got = prometheus.instant(expr, t), canopy.target.instant(expr, t)
        return (
            raw,
            f"instant {name} t={ds.fmt_seconds(t)}",
            compare(prom, got, ordered=px.is_ordered(expr)),
        )

    for raw, where, mismatches in _run(jobs, ask):
        report.add(px.render(raw, timeline), where, mismatches)
    report.check()


def test_range_queries_match_prometheus(prometheus, canopy, timeline):
    _require_api(canopy)
    report = Report()
    jobs = [(raw, name, r) for raw in px.VALID for name, r in timeline.ranges().items()]

    def ask(job):
        raw, name, (start, end, step) = job
        expr = px.render(raw, timeline)
        prom = prometheus.range(expr, start, end, step)
        got = canopy.target.range(expr, start, end, step)
        where = (
            f"range {name} start={ds.fmt_seconds(start)} end={ds.fmt_seconds(end)} "
            f"step={step // 1000}s"
        )
        return raw, where, compare(prom, got)

    for raw, where, mismatches in _run(jobs, ask):
        report.add(px.render(raw, timeline), where, mismatches)
    report.check()


def test_invalid_expressions_fail_like_in_prometheus(prometheus, canopy, timeline):
    _require_api(canopy)
    report = Report()
    start, end, step = timeline.ranges()["step30s"]
    for expr in px.PARSE_ERRORS + px.EXECUTION_ERRORS:
        report.add(
            expr,
            "instant",
            compare(
                prometheus.instant(expr, timeline.end_ms),
                canopy.target.instant(expr, timeline.end_ms),
            ),
        )
        report.add(
            expr,
            "range",
            compare(
                prometheus.range(expr, start, end, step),
                canopy.target.range(expr, start, end, step),
            ),
        )
    report.check()


def test_parse_errors_say_what_prometheus_says_where_it_says_it(prometheus, canopy, timeline):
    _require_api(canopy)
    differ = []
    start, end, step = timeline.ranges()["step30s"]
    for expr in px.PARSE_ERRORS + px.PARSE_ERROR_MESSAGES + px.MID_QUERY_PARSE_ERRORS:
        for kind, want, got in (
            (
                "instant",
                prometheus.instant(expr, timeline.end_ms),
                canopy.target.instant(expr, timeline.end_ms),
            ),
            (
                "range",
                prometheus.range(expr, start, end, step),
                canopy.target.range(expr, start, end, step),
            ),
        ):
            assert want.status == 400 and want.error_type == "bad_data", (expr, want.text)
            # the whole message: instant queries prefix it with 'invalid parameter "query": '
            if (got.status, got.error_type, got.error) != (400, "bad_data", want.error):
                differ.append(
                    f"{kind} {expr!r}\n  prometheus: {want.error}\n  canopy:     {got.error}"
                )
    assert not differ, "\n".join(differ)


def test_get_form_post_and_basic_auth_agree(prometheus, canopy, timeline):
    """Grafana POSTs form bodies and may authenticate with basic auth (org slug, token)."""
    _require_api(canopy)
    report = Report()
    basic = Target("canopy-basic", canopy.base)
    t = timeline.end_ms
    for expr in GET_POST_EXPRESSIONS:
        prom_get = prometheus.instant(expr, t)
        prom_post = prometheus.instant(expr, t, method="POST")
        assert compare(prom_get, prom_post) == [], expr  # Prometheus agrees with itself
        report.add(expr, "POST", compare(prom_post, canopy.target.instant(expr, t, "POST")))
        report.add(expr, "GET", compare(prom_get, canopy.target.instant(expr, t)))
        params = {"query": expr, "time": ds.fmt_seconds(t)}
        with_basic = basic.call("query", params, auth=(ORG_SLUG, canopy.read_token))
        report.add(expr, "GET, basic auth", compare(prom_get, with_basic))
        start, end, step = timeline.ranges()["step60s_unaligned"]
        params = {
            "query": expr,
            "start": ds.fmt_seconds(start),
            "end": ds.fmt_seconds(end),
            "step": ds.fmt_seconds(step),
        }
        report.add(
            expr,
            "range POST",
            compare(
                prometheus.call("query_range", params, "POST"),
                canopy.target.call("query_range", params, "POST"),
            ),
        )
    basic.close()
    report.check()
