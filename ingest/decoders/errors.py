"""Errors raised by the wire decoders.

Every problem with the bytes a client sent is a :class:`DecodeError` (a ``ValueError``) whose
message is a human-readable reason, safe to return in the response body. ``http_status`` tells the
API layer which 4xx to answer with; none of these are retryable, so none may become a 5xx.
"""

from __future__ import annotations

from typing import ClassVar


class DecodeError(ValueError):
    """The payload is malformed or invalid (HTTP 400)."""

    http_status: ClassVar[int] = 400


class PayloadTooLarge(DecodeError):
    """The payload, once decompressed, would exceed the size limit (HTTP 413)."""

    http_status: ClassVar[int] = 413


class UnsupportedMediaType(DecodeError):
    """The Content-Type or Content-Encoding is not one this decoder speaks (HTTP 415)."""

    http_status: ClassVar[int] = 415
