"""Credentials as test clients send them."""

from __future__ import annotations

import base64

# the password of every user the ``tenants`` fixture creates
PASSWORD = "correct-horse-battery-staple"


def bearer(secret: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {secret}"}


def basic(username: str, secret: str) -> dict[str, str]:
    raw = base64.b64encode(f"{username}:{secret}".encode()).decode()
    return {"HTTP_AUTHORIZATION": f"Basic {raw}"}
