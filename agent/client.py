"""The agent's HTTP client for Canopy's agent API (stdlib only: urllib)."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from agent import __version__

USER_AGENT = f"canopy-agent/{__version__}"


class TransportError(Exception):
    """Canopy could not be reached or failed (network error, timeout, 5xx): retry later."""


class Refused(Exception):
    """Canopy refused the request (4xx other than 304): the token, the cluster or the request
    is wrong. ``status`` is the HTTP status."""

    def __init__(self, status: int, message: str):
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message


@dataclass(frozen=True)
class ConfigAnswer:
    status: int  # 200 a bundle (revision null: nothing rolled out yet), 304 unchanged
    etag: str | None
    document: Any = None
    agent_url: str | None = None  # the server's hint: where long polls are served


def _etag_value(header: str | None) -> str | None:
    if not header:
        return None
    value = header.strip()
    if value.startswith("W/"):
        value = value[2:]
    return value.strip('"') or None


class CanopyClient:
    def __init__(self, url: str, token: str, *, timeout: float = 10.0):
        if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
            raise ValueError(f"--url must be an http:// or https:// URL, not {url!r}")
        self.base = url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def _request(self, method: str, path: str, *, body=None, headers=None, timeout=None):
        data = None if body is None else json.dumps(body).encode()
        # The scheme was checked in __init__: http or https only.
        request = urllib.request.Request(self.base + path, data=data, method=method)  # noqa: S310
        request.add_header("Authorization", f"Bearer {self.token}")
        request.add_header("User-Agent", USER_AGENT)
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            response = urllib.request.urlopen(request, timeout=timeout or self.timeout)  # noqa: S310
        except urllib.error.HTTPError as exc:
            if exc.code == 304:
                return exc.code, exc.headers, b""
            text = exc.read(2000).decode("utf-8", "replace")
            if exc.code >= 500 or exc.code == 429:
                raise TransportError(f"HTTP {exc.code}: {text}") from exc
            raise Refused(exc.code, _error_message(text)) from exc
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            reason = getattr(exc, "reason", exc)
            raise TransportError(f"{type(exc).__name__}: {reason}") from exc
        with response:
            try:
                return response.status, response.headers, response.read()
            except (OSError, TimeoutError) as exc:
                raise TransportError(f"{type(exc).__name__}: {exc}") from exc

    def config(self, *, etag: str | None, wait: int) -> ConfigAnswer:
        """The cluster's desired bundle; with ``etag`` and ``wait`` the server holds the request
        until the desired revision differs from ``etag`` or ``wait`` seconds pass (304)."""
        query = f"?wait={wait}" if etag is not None and wait > 0 else ""
        headers = {"If-None-Match": f'"{etag}"'} if etag is not None else {}
        status, response_headers, body = self._request(
            "GET", f"/api/v1/agent/config{query}", headers=headers, timeout=wait + self.timeout
        )
        new_etag = _etag_value(response_headers.get("ETag")) or etag
        hint = response_headers.get("Canopy-Agent-Url")
        if status != 200:
            return ConfigAnswer(status, new_etag, None, hint)
        try:
            document = json.loads(body)
        except ValueError as exc:
            raise TransportError(f"the bundle is not JSON: {exc}") from exc
        return ConfigAnswer(status, new_etag, document, hint)

    def follow(self, hint: str | None) -> str | None:
        """Move to the URL the server names for long polls: only on the same host (the token
        goes nowhere else) and over http(s). The new base URL, or None if not moved."""
        if not hint:
            return None
        target = urllib.parse.urlsplit(hint.strip())
        here = urllib.parse.urlsplit(self.base)
        if target.scheme not in ("http", "https") or target.hostname != here.hostname:
            return None
        base = urllib.parse.urlunsplit((target.scheme, target.netloc, target.path, "", ""))
        base = base.rstrip("/")
        if base == self.base:
            return None
        self.base = base
        return base

    def status(
        self, *, revision: int | None, attempt_id: str, state: str, error: dict | None, agent: str
    ) -> dict:
        body = {
            "revision": revision,
            "attempt_id": attempt_id,
            "state": state,
            "error": error,
            "agent_version": agent,
        }
        _, _, answer = self._request("POST", "/api/v1/agent/status", body=body)
        try:
            return json.loads(answer or b"{}")
        except ValueError:
            return {}


def _error_message(text: str) -> str:
    try:
        document = json.loads(text)
    except ValueError:
        return text.strip()[:300]
    if isinstance(document, dict):
        return str(document.get("detail") or document.get("error") or document)[:300]
    return str(document)[:300]
