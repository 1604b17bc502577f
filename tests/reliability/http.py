"""Requests as the reliability tests send them: through Django's test client, with a server
fault's traceback kept on the response instead of raised."""

from __future__ import annotations

import traceback

from django.core.signals import got_request_exception
from django.test import Client


def send(client: Client, method: str, url: str, body, content_type, **extra):
    """The response; a server fault's traceback is kept on it (``response.fault``)."""
    faults = []

    def keep(sender, **kwargs):
        faults.append(traceback.format_exc(limit=-4))

    kwargs = {"data": body or b"", "content_type": content_type or "application/octet-stream"}
    got_request_exception.connect(keep)
    try:
        response = client.generic(method, url, **kwargs, **extra)
    finally:
        got_request_exception.disconnect(keep)
    response.fault = "".join(faults)
    return response
