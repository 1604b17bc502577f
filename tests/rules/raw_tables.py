"""Transactional tests end with Django flushing its tables; the raw sample tables
(``metric_batches``, ``metric_blocks``) are not Django's, and what rule evaluations wrote
there would outlive the test (and its org)."""

from __future__ import annotations

import pytest
from django.db import connection


def _uses_real_transactions(request) -> bool:
    marker = request.node.get_closest_marker("django_db")
    return bool(marker and marker.kwargs.get("transaction")) or bool(
        {"transactional_db", "live_server"} & set(request.fixturenames)
    )


@pytest.fixture(autouse=True)
def _raw_sample_tables_emptied(request, django_db_blocker):
    yield
    if _uses_real_transactions(request):
        # (this teardown may run after the test's database fixture has closed access)
        with django_db_blocker.unblock(), connection.cursor() as cur:
            cur.execute("DELETE FROM metric_batches")
            cur.execute("DELETE FROM metric_blocks")
