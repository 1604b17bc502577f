"""The client's address of a request, the one answer for every per-client limit: sign-up's
per-address rate limit (``web/signup.py``) and django-axes' lockouts
(``AXES_CLIENT_IP_CALLABLE`` points here).

By default (``CANOPY_TRUSTED_PROXIES=0``) it is ``REMOTE_ADDR``, the peer of the TCP
connection: a forwarded-for header is then only a claim of the client and is ignored (anyone
could send ``X-Forwarded-For: <someone else>`` to pick a fresh bucket or lock another user out).

Behind N reverse proxies of your own, ``CANOPY_TRUSTED_PROXIES=N``: each proxy appends the
address it got the request from to ``X-Forwarded-For`` (``CANOPY_CLIENT_ADDRESS_HEADER`` names
another header, e.g. ``X-Real-IP`` with N=1), so the client is the N-th entry from the right;
the entries left of it were written by the client and are not trusted. A header with fewer
than N entries or an entry that is not an IP address (a request that did not come through every
proxy, or a misconfiguration) falls back to ``REMOTE_ADDR``: never an address the client chose.
"""

from __future__ import annotations

import ipaddress
import re
from typing import TYPE_CHECKING

from django.conf import settings

if TYPE_CHECKING:
    from django.http import HttpRequest

MAX_HEADER = 2048  # bytes of the header looked at; a longer one is cut (bounded input)


def client_address(request: HttpRequest) -> str:
    peer = request.META.get("REMOTE_ADDR", "") or ""
    hops = settings.CANOPY_TRUSTED_PROXIES
    if hops <= 0:
        return peer
    raw = request.META.get(settings.CANOPY_CLIENT_ADDRESS_META, "") or ""
    entries = [e.strip() for e in raw[:MAX_HEADER].split(",")]
    if len(entries) < hops or (len(entries) == 1 and not entries[0]):
        return peer
    candidate = entries[-hops]
    if candidate.startswith("[") and "]" in candidate:  # [v6]:port
        candidate = candidate[1 : candidate.index("]")]
    elif candidate.count(":") == 1:  # v4:port
        candidate = candidate.partition(":")[0]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return peer


def meta_key(header: str) -> str:
    """``X-Forwarded-For`` -> ``HTTP_X_FORWARDED_FOR`` (its key in ``request.META``); a name
    that is not a plain header name is a start-up error."""
    name = header.strip()
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9-]{0,63}", name):
        raise ValueError(f"{header!r} is not an HTTP header name")
    return "HTTP_" + name.upper().replace("-", "_")
