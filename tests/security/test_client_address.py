"""The client's address (backend/clientaddr.py): REMOTE_ADDR unless CANOPY_TRUSTED_PROXIES
says how many proxies of our own append to X-Forwarded-For; sign-up and axes agree."""

from __future__ import annotations

import pytest
from axes.helpers import get_client_ip_address
from django.core.exceptions import ImproperlyConfigured
from django.test import RequestFactory

from backend.clientaddr import client_address, meta_key

CASES = [
    # (trusted proxies, X-Forwarded-For, expected)
    (0, None, "10.0.0.1"),
    (0, "203.0.113.5", "10.0.0.1"),  # default: the header is the client's claim, ignored
    (1, None, "10.0.0.1"),  # did not come through the proxy
    (1, "", "10.0.0.1"),
    (1, "203.0.113.5", "203.0.113.5"),
    (1, "192.0.2.1, 203.0.113.5", "203.0.113.5"),  # the client's own entry is not trusted
    (2, "192.0.2.1, 203.0.113.5, 172.16.0.2", "203.0.113.5"),
    (2, "203.0.113.5", "10.0.0.1"),  # fewer entries than proxies: fail closed to the peer
    (1, "not-an-address", "10.0.0.1"),
    (1, "203.0.113.5:4711", "203.0.113.5"),
    (1, "[2001:db8::1]:4711", "2001:db8::1"),
    (1, "2001:db8::1", "2001:db8::1"),
    (1, "x" * 10_000, "10.0.0.1"),  # bounded: a huge header is cut, then not an address
]


@pytest.mark.parametrize(("hops", "forwarded", "expected"), CASES)
def test_client_address(settings, hops, forwarded, expected):
    settings.CANOPY_TRUSTED_PROXIES = hops
    extra = {"REMOTE_ADDR": "10.0.0.1"}
    if forwarded is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    request = RequestFactory().get("/", **extra)
    assert client_address(request) == expected
    # django-axes (login lockouts) sees the very same address
    assert settings.AXES_CLIENT_IP_CALLABLE == "backend.clientaddr.client_address"
    assert get_client_ip_address(request) == expected


def test_another_header(settings):
    settings.CANOPY_TRUSTED_PROXIES = 1
    settings.CANOPY_CLIENT_ADDRESS_META = meta_key("X-Real-IP")
    request = RequestFactory().get(
        "/", REMOTE_ADDR="10.0.0.1", HTTP_X_REAL_IP="203.0.113.9", HTTP_X_FORWARDED_FOR="1.2.3.4"
    )
    assert client_address(request) == "203.0.113.9"


def test_settings_from_the_environment(monkeypatch):
    from backend.envconfig import env_int

    monkeypatch.setenv("CANOPY_TRUSTED_PROXIES", "-1")
    with pytest.raises(ImproperlyConfigured):
        env_int("CANOPY_TRUSTED_PROXIES", 0, minimum=0)
    assert meta_key("X-Forwarded-For") == "HTTP_X_FORWARDED_FOR"
    with pytest.raises(ValueError, match="not an HTTP header name"):
        meta_key("X-Forwarded-For\r\nEvil: 1")
