"""The traces the tracing query APIs are tested on (stored by the ``traces`` fixture of
tests/tracing/conftest.py), and reading those APIs."""

from __future__ import annotations

import time

from tests.helpers.credentials import bearer

# when the spans of the ``traces`` fixture start
NOW = time.time_ns() - 60 * 10**9


def get(api, url, token, **params):
    response = api.get(url, params, **bearer(token), HTTP_ACCEPT="application/json")
    return response.status_code, response.json()
