"""A request body as a transport hands it to an accept service."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Payload:
    # The body, refused with PayloadTooLarge past the number of bytes it is given: the accept
    # service knows the org's cap, the transport knows how to read.
    read: Callable[[int], bytes]
    content_type: str | None = None
    content_encoding: str | None = None
    # The protocol's own cap on the (decompressed) body, where it is below the org's.
    max_bytes: int | None = None
