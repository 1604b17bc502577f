"""The agent's HTTP client: which URLs it accepts and which server hints it follows."""

import pytest

from agent.client import CanopyClient


def test_only_http_urls():
    with pytest.raises(ValueError, match="http"):
        CanopyClient("file:///etc/passwd", "t")
    assert CanopyClient("https://canopy.example.com/", "t").base == "https://canopy.example.com"


def test_follows_a_long_poll_hint_on_the_same_host_only():
    client = CanopyClient("http://canopy.example.com:8000", "t")
    # Another host would receive the cluster's token: ignored.
    assert client.follow("http://elsewhere.example.com:8001") is None
    assert client.follow("ftp://canopy.example.com:8001") is None
    assert client.follow(None) is None
    assert client.base == "http://canopy.example.com:8000"
    assert client.follow("http://canopy.example.com:8001/") == "http://canopy.example.com:8001"
    assert client.base == "http://canopy.example.com:8001"
    assert client.follow("http://canopy.example.com:8001") is None  # already there
