"""Whole-request refusals, typed, for every signal: the one place where the errors of decoding
and of storage become answers. Each protocol renders a refusal its own way (an HTTP status and
body, a gRPC status).

Bad data is never retried by senders, a rate limit is retried later, and storage being down
(PostgreSQL or Redis) is retried with backoff: the three must stay apart.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass

from django.db import DatabaseError
from redis.exceptions import RedisError

from ingest.decoders.errors import DecodeError, PayloadTooLarge, UnsupportedMediaType

log = logging.getLogger(__name__)

STORAGE_ERRORS = (DatabaseError, RedisError)
ACCEPT_ERRORS = (DecodeError, *STORAGE_ERRORS)
STORAGE_RETRY_AFTER_SECONDS = 5


class Refusal(enum.Enum):
    PAYLOAD_TOO_LARGE = "payload_too_large"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    INVALID = "invalid"
    RATE_LIMITED = "rate_limited"
    STORAGE_UNAVAILABLE = "storage_unavailable"


@dataclass(frozen=True, slots=True)
class Refused:
    """Nothing of the request was stored."""

    refusal: Refusal
    message: str
    retry_after: int | None = None  # seconds
    cause: Exception | None = None  # the storage error, for protocols that quote it


def refused_from_error(exc: Exception, *, storage: str) -> Refused:
    """The refusal for one of ACCEPT_ERRORS; call it in the ``except`` block (a storage error
    is logged with its traceback as "<storage> storage unavailable")."""
    if isinstance(exc, PayloadTooLarge):
        return Refused(Refusal.PAYLOAD_TOO_LARGE, str(exc))
    if isinstance(exc, UnsupportedMediaType):
        return Refused(Refusal.UNSUPPORTED_MEDIA_TYPE, str(exc))
    if isinstance(exc, DecodeError):
        return Refused(Refusal.INVALID, str(exc))
    if isinstance(exc, STORAGE_ERRORS):
        log.exception("%s storage unavailable", storage)
        return Refused(
            Refusal.STORAGE_UNAVAILABLE,
            f"storage temporarily unavailable: {exc.__class__.__name__}",
            retry_after=STORAGE_RETRY_AFTER_SECONDS,
            cause=exc,
        )
    raise TypeError(f"not an accept error: {exc!r}") from exc
