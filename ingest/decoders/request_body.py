"""What the HTTP decoders do to a request body before reading its format.

:func:`decode_body` undoes ``Content-Encoding: gzip`` (or none) under a hard size cap, and
:func:`parse_json` parses strict UTF-8 JSON into plain dicts and lists.

Decompression: :func:`decode_body` never produces more than ``max_size + 1`` decompressed bytes:
zlib is asked for at most the bytes still allowed, so a gzip bomb (a few KiB expanding to
gigabytes) stops at the cap instead of exhausting memory, and costs at most the time to inflate
``max_size`` bytes. Before that, the gzip trailer's ISIZE (the uncompressed size of the last
member, modulo 2**32) is checked: an honest body that declares more than the cap is refused
without inflating anything (a corrupt trailer may thus be answered 413 rather than 400).

Concatenated gzip members (RFC 1952 allows them; Go's and Python's readers accept them) are read
one after the other against the same cap. Trailing bytes that are not a gzip member are an error,
and so are more than 1,000 members.

JSON: the stdlib's C parser, on the body decoded as strict UTF-8 (``json.loads`` on bytes would
also take UTF-16/32, and UTF-8-encoded surrogates). A lone UTF-16 surrogate escape
(``"\\ud800"``) parses into a string that cannot be encoded to UTF-8 again, so it becomes U+FFFD,
as Go's decoder does; the document is only walked for that when such an escape occurs.
"""

from __future__ import annotations

import json
import re
import zlib
from typing import Any

from ingest.decoders.errors import DecodeError, PayloadTooLarge, UnsupportedMediaType

__all__ = ["decode_body", "is_gzip", "parse_json"]

# JSON escapes of UTF-16 surrogates; only when one occurs is the parsed document scrubbed.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")

_GZIP_MAGIC = b"\x1f\x8b"
_GZIP_WBITS = 16 + zlib.MAX_WBITS  # gzip header and trailer, 32 KiB window
_MIN_MEMBER = 20  # 10-byte header + empty deflate block (2) + 8-byte trailer
_INPUT_CHUNK = 1 << 16
# Real senders write one member; thousands of empty ones would only cost us time.
_MAX_MEMBERS = 1000


def is_gzip(content_encoding: str | None) -> bool:
    """True for gzip, False for identity or absent; UnsupportedMediaType for anything else."""
    encoding = (content_encoding or "").strip().lower()
    if encoding in ("", "identity"):
        return False
    if encoding in ("gzip", "x-gzip"):
        return True
    raise UnsupportedMediaType(
        f"unsupported Content-Encoding {content_encoding!r}: expected gzip or identity"
    )


def decode_body(body: bytes, *, content_encoding: str | None, max_size: int) -> bytes:
    """The body as sent, decompressed if gzip, refusing more than ``max_size`` bytes.

    Raises :class:`UnsupportedMediaType` for an encoding other than gzip/identity,
    :class:`PayloadTooLarge` past ``max_size`` and :class:`DecodeError` for corrupt gzip.
    """
    if not is_gzip(content_encoding):
        if len(body) > max_size:
            raise PayloadTooLarge(f"body is {len(body)} bytes, the limit is {max_size}")
        return body if type(body) is bytes else bytes(body)
    return _gunzip(body, max_size)


def _gunzip(body: bytes, max_size: int) -> bytes:
    if not body.startswith(_GZIP_MAGIC):
        raise DecodeError("gzip: body does not start with a gzip header")
    if len(body) >= _MIN_MEMBER:
        declared = int.from_bytes(body[-4:], "little")
        if declared > max_size:
            raise PayloadTooLarge(
                f"gzip: body declares {declared} decompressed bytes, the limit is {max_size}"
            )
    # The input goes to zlib a chunk at a time so that what zlib copies out of it (the input
    # left over after a member, or after hitting the output cap) stays small.
    view = memoryview(body)
    position = 0
    pending: bytes | memoryview = b""
    inflater = zlib.decompressobj(_GZIP_WBITS)
    members = 1
    parts: list[bytes] = []
    total = 0
    while True:
        if not pending:
            if position >= len(body):
                break
            pending = view[position : position + _INPUT_CHUNK]
            position += len(pending)
        try:
            # max_length caps what zlib produces (and allocates) to one byte past the budget.
            out = inflater.decompress(pending, max_size - total + 1)
        except zlib.error as exc:
            raise DecodeError(f"gzip: corrupt stream ({exc})") from None
        total += len(out)
        if total > max_size:
            raise PayloadTooLarge(f"gzip: body decompresses to more than {max_size} bytes")
        if out:
            parts.append(out)
        if not inflater.eof:
            pending = inflater.unconsumed_tail
            continue
        pending = inflater.unused_data
        if not pending and position >= len(body):
            break
        members += 1
        if members > _MAX_MEMBERS:
            raise DecodeError(f"gzip: more than {_MAX_MEMBERS} concatenated members")
        inflater = zlib.decompressobj(_GZIP_WBITS)
    if not inflater.eof:
        raise DecodeError("gzip: truncated stream")
    return parts[0] if len(parts) == 1 else b"".join(parts)


def parse_json(raw: bytes) -> Any:
    """The JSON document in ``raw`` (strict UTF-8), with lone surrogates made U+FFFD.

    Raises :class:`DecodeError` for anything that is not JSON (or not UTF-8).
    """
    try:
        text = raw.decode()
    except UnicodeDecodeError as exc:
        raise DecodeError(f"body is not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
    try:
        document = json.loads(text)
    except RecursionError:
        raise DecodeError("body is not valid JSON: nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, or an integer of more than 4,300 digits
        raise DecodeError(f"body is not valid JSON ({exc})") from None
    if "\\u" in text and _SURROGATE_ESCAPE.search(text):
        document = scrub_surrogates(document)
    return document


def scrub_surrogates(document: Any) -> Any:
    """``document`` (parsed JSON) with lone UTF-16 surrogates in strings replaced by U+FFFD."""

    def clean(text: str) -> str:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")

    if type(document) is str:
        return clean(document)
    root = [document]
    stack: list[Any] = [root]
    while stack:
        container = stack.pop()
        items = container.items() if type(container) is dict else enumerate(container)
        updates = []
        for key, value in items:
            kind = type(value)
            if kind is str:
                cleaned = clean(value)
                if cleaned != value:
                    updates.append((key, cleaned))
            elif kind is dict or kind is list:
                stack.append(value)
            if type(key) is str and clean(key) != key:
                updates.append((key, None))
        for key, value in updates:
            if value is None:
                container[clean(key)] = container.pop(key)
            else:
                container[key] = value
    return root[0]
