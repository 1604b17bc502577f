"""The Overview page's figures, each with the window it covers.

The page renders them once and then refreshes them from ``/overview/figures`` (JSON, same
session, same org resolution as the page). Every database read runs in one read-only
transaction under the org's query timeout (``query_timeout_seconds``), the bound the PromQL
and trace reads already have: a slow or blocked read is cancelled by PostgreSQL, and the page
says so instead of hanging.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.db import transaction

from backend.metrics.selectors import ingest_overview
from backend.tenancy import selectors
from backend.tenancy.models import Organization
from backend.tenancy.rejections import rejections_get
from backend.tenancy.selectors import limits_get
from backend.tracing.api.base import ReadTimedOut, bounded_reading
from backend.tracing.selectors import traces_overview

__all__ = ["OverviewTimedOut", "overview_get", "overview_unread"]

# What each figure counts over, as the page states it next to the figure.
SERIES_WINDOW = "now, in the catalog"
METRICS_WINDOW = "now, in the catalog"
SAMPLES_WINDOW = "last 1 h"
NEWEST_WINDOW = "looked for in the last 24 h"
SPANS_WINDOW = "last 1 h"
SERVICES_WINDOW = "since the first span"
REFUSED_WINDOW = "since the counters began"


class OverviewTimedOut(Exception):
    """The figures' reads ran past the org's query timeout (seconds in ``args[0]``)."""


@dataclass(frozen=True, slots=True)
class Figure:
    key: str
    value: int | None
    label: str
    window: str


def _figures(org: Organization, now_ns: int) -> tuple[list[Figure], int | None, dict]:
    ingest = ingest_overview(org_id=org.pk, now_ms=now_ns // 10**6)
    traces = traces_overview(org_id=org.pk, now_ns=now_ns)
    tokens = selectors.token_list(org=org)
    active_tokens = sum(1 for t in tokens if t.is_active())
    members = selectors.membership_list(org=org).count()
    figures = [
        Figure("series", ingest.series, "active series", SERIES_WINDOW),
        Figure("metrics", ingest.metrics, "metric names", METRICS_WINDOW),
        Figure("samples", ingest.samples_last_hour, "samples stored", SAMPLES_WINDOW),
        Figure("spans", traces.spans_last_hour, "spans stored", SPANS_WINDOW),
        Figure("services", traces.services, "traced services", SERVICES_WINDOW),
    ]
    return figures, ingest.last_sample_ms, {"tokens": active_tokens, "members": members}


def overview_unread() -> dict:
    """The figures' frame without values (shown as "—"), for a page whose reads timed out:
    the refresh fills it in once they answer."""
    figures = [
        Figure("series", None, "active series", SERIES_WINDOW),
        Figure("metrics", None, "metric names", METRICS_WINDOW),
        Figure("samples", None, "samples stored", SAMPLES_WINDOW),
        Figure("spans", None, "spans stored", SPANS_WINDOW),
        Figure("services", None, "traced services", SERVICES_WINDOW),
    ]
    return {
        "figures": [
            {"key": f.key, "value": f.value, "label": f.label, "window": f.window} for f in figures
        ],
        "last_sample_ms": None,
        "newest_window": NEWEST_WINDOW,
        "counts": {},
        "rejections": [],
        "rejections_window": REFUSED_WINDOW,
        "generated_ms": None,
    }


def _rejections(org_id: int) -> list[dict]:
    refused = rejections_get(org_id=org_id)
    rows = [
        (signal, reason, n) for signal, reasons in refused.items() for reason, n in reasons.items()
    ]
    top = max((n for *_, n in rows), default=0)
    return [
        {
            "signal": signal,
            "reason": reason.replace("_", " "),
            "count": n,
            "pct": round(100 * n / top),
        }
        for signal, reason, n in sorted(rows, key=lambda row: -row[2])
    ]


def overview_get(*, org: Organization, now_ns: int | None = None) -> dict:
    """The Overview's figures for ``org``: ``{figures, last_sample_ms, newest_window, counts,
    rejections, rejections_window, generated_ms}``. Raises OverviewTimedOut when the reads run
    past the org's query timeout."""
    now_ns = now_ns or time.time_ns()
    timeout = float(limits_get(org_id=org.pk).query_timeout_seconds)
    try:
        with bounded_reading(timeout_seconds=timeout):
            figures, last_sample_ms, counts = _figures(org, now_ns)
            # Nothing was written: end the read-only transaction (or savepoint, inside a
            # caller's transaction) by rolling it back, so its settings end with it.
            transaction.set_rollback(True)
    except ReadTimedOut as exc:
        raise OverviewTimedOut(timeout) from exc
    return {
        "figures": [
            {"key": f.key, "value": f.value, "label": f.label, "window": f.window} for f in figures
        ],
        "last_sample_ms": last_sample_ms,
        "newest_window": NEWEST_WINDOW,
        "counts": counts,
        "rejections": _rejections(org.pk),
        "rejections_window": REFUSED_WINDOW,
        "generated_ms": now_ns // 10**6,
    }
