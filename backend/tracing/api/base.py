"""The base of the tracing query APIs: every parameter free of NUL, every handler run inside
one read-only transaction whose ``statement_timeout`` is the org's query timeout (the same
bound ``metrics.storage.reader.PostgresQuerier.reading`` puts on PromQL reads), and the
errors of both rendered by each API in its own shape."""

from __future__ import annotations

import contextlib
import functools

from django.db import OperationalError, connection, transaction
from psycopg import errors as pg_errors

from backend.tenancy import params as strict
from backend.tenancy.api_base import OrgAPIView
from backend.tenancy.models import Scope
from backend.tenancy.selectors import limits_get


class ReadTimedOut(Exception):
    """PostgreSQL cancelled a trace read at the org's query timeout."""


@contextlib.contextmanager
def bounded_reading(*, timeout_seconds: float):
    """One read-only transaction; statements in it are cancelled after ``timeout_seconds``."""
    timeout_ms = max(1, int(timeout_seconds * 1000))
    try:
        with transaction.atomic():
            with connection.cursor() as cur:  # both settings last until the end
                cur.execute(
                    "SELECT set_config('statement_timeout', %s, true),"
                    " set_config('transaction_read_only', 'on', true)",
                    [str(timeout_ms)],
                )
            yield
    except OperationalError as exc:
        if isinstance(exc.__cause__, pg_errors.QueryCanceled):
            raise ReadTimedOut(timeout_seconds) from exc
        raise


class TraceAPIView(OrgAPIView):
    scopes = {"GET": [Scope.TRACES_READ]}

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        for name, values in request.query_params.lists():
            strict.text("a parameter name", name)
            for value in values:
                strict.text(name, value)
        for name, value in kwargs.items():
            strict.text(name, value)
        timeout = float(limits_get(org_id=self.org.pk).query_timeout_seconds)
        method = request.method.lower()
        handler = getattr(self, method, None)
        if handler is not None:
            # DRF looks the handler up after initial(): the bounded one is what runs.
            setattr(self, method, functools.partial(_bounded, handler, timeout))

    def bad_request(self, message: str):
        raise NotImplementedError

    def timed_out(self, message: str):
        return self.bad_request(message)

    def handle_exception(self, exc):
        if isinstance(exc, strict.ParamError):
            return self.bad_request(str(exc))
        if isinstance(exc, ReadTimedOut):
            return self.timed_out(
                f"the search ran past the query timeout ({exc.args[0]:g} s): narrow it "
                "(a shorter time window, a service or operation, fewer regex filters)"
            )
        return super().handle_exception(exc)


def _bounded(handler, timeout_seconds: float, *args, **kwargs):
    with bounded_reading(timeout_seconds=timeout_seconds):
        return handler(*args, **kwargs)
