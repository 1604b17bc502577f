"""Snappy *block* format (not the framed/streaming format), as remote-write requires.

A block starts with the uncompressed length as a little-endian base-128 varint (at most 32 bits).
:func:`decompress` checks that declared length against ``max_size`` before decompressing, so a
small body that declares gigabytes is refused without allocating anything.
"""

from __future__ import annotations

import cramjam

from ingest.decoders.errors import DecodeError, PayloadTooLarge

# The format stores the length as a uint32: 5 varint bytes at most.
_MAX_HEADER_BYTES = 5


def declared_length(body: bytes) -> int:
    """The uncompressed length announced by the block header."""
    length = 0
    for i, byte in enumerate(body[:_MAX_HEADER_BYTES]):
        length |= (byte & 0x7F) << (7 * i)
        if byte < 0x80:
            if length > 0xFFFF_FFFF:
                break
            return length
    if not body:
        raise DecodeError("snappy: empty body")
    raise DecodeError("snappy: invalid block header (bad uncompressed length)")


def decompress(body: bytes, *, max_size: int) -> bytes:
    """Decompress a snappy block, refusing one that would exceed ``max_size`` bytes.

    Raises :class:`PayloadTooLarge` when the declared length exceeds ``max_size`` (checked before
    any decoding) and :class:`DecodeError` for a malformed block.
    """
    expected = declared_length(body)
    if expected > max_size:
        raise PayloadTooLarge(
            f"snappy: decompressed body would be {expected} bytes, the limit is {max_size}"
        )
    try:
        out = cramjam.snappy.decompress_raw(body, output_len=expected)
    except cramjam.DecompressionError as exc:
        raise DecodeError(f"snappy: corrupt block ({exc})") from None
    data = bytes(out)
    if len(data) != expected:
        raise DecodeError(
            f"snappy: block decompressed to {len(data)} bytes but declared {expected}"
        )
    return data


def compress(data: bytes) -> bytes:
    """Compress to a snappy block (for tests, benchmarks and clients)."""
    return bytes(cramjam.snappy.compress_raw(data))
