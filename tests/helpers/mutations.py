"""Hypothesis strategies that damage valid request bodies."""

from __future__ import annotations

from hypothesis import strategies as st


@st.composite
def mutated(draw, base: bytes):
    data = bytearray(base)
    for _ in range(draw(st.integers(1, 8))):
        if not data:
            break
        i = draw(st.integers(0, len(data) - 1))
        action = draw(st.sampled_from(["flip", "delete", "insert", "truncate"]))
        if action == "flip":
            data[i] ^= draw(st.integers(1, 255))
        elif action == "delete":
            del data[i]
        elif action == "insert":
            data.insert(i, draw(st.integers(0, 255)))
        else:
            del data[i:]
    return bytes(data)
