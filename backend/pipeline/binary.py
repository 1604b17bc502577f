"""Statements whose parameters or results are large ``bytea`` values (outbox payloads, span
blocks), bound on the server and sent or fetched in binary.

Django's PostgreSQL cursors bind parameters on the client: a ``bytea`` parameter travels as a
hex literal inside the statement text (twice its size, escaped by the client and parsed by
the server), and results come back as hex text. For a payload of hundreds of kilobytes that
costs more than the statement itself (``bench/traces_ingest.py``). These cursors share the
Django connection and its transaction.
"""

from __future__ import annotations

import psycopg


def binary_cursor(cur) -> psycopg.Cursor:
    """A server-binding cursor on the connection of the Django cursor ``cur`` (its
    transaction): ``%b`` sends a parameter in binary; ``execute(..., binary=True)`` fetches
    the results in binary."""
    return psycopg.Cursor(cur.cursor.connection)
