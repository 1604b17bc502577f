"""Container health checks: ``python -m backend.healthcheck KIND ARG`` exits 0 when healthy.

Used by ``docker/compose.yaml`` (standard library only, so a check costs no Django start-up):

- ``http URL``: the URL answers 2xx within the timeout. The ``Host`` header is the first
  concrete name of ``$ALLOWED_HOSTS`` (a check of ``127.0.0.1`` would otherwise be refused
  with 400 by a server configured for its public name only).
- ``tcp HOST:PORT``: something accepts a TCP connection there (the OTLP/gRPC receiver).
- ``fresh GLOB SECONDS``: a file matching GLOB was modified within SECONDS (Celery beat's
  schedule file, which beat rewrites every few minutes while it runs).

Celery workers are checked with Celery's own ``celery inspect ping`` instead (a round trip
through the broker to that very worker).
"""

from __future__ import annotations

import glob
import os
import socket
import sys
import time
import urllib.error
import urllib.request

TIMEOUT_SECONDS = 5.0


def _host_header() -> str | None:
    for name in os.environ.get("ALLOWED_HOSTS", "").split(","):
        name = name.strip()
        if name and name != "*" and not name.startswith("."):
            return name
    return None


def check_http(url: str, timeout: float = TIMEOUT_SECONDS) -> str | None:
    """None when healthy, else why not."""
    if not url.startswith(("http://", "https://")):
        return f"not an http(s) URL: {url}"
    request = urllib.request.Request(url)  # noqa: S310 - scheme checked above
    host = _host_header()
    if host:
        request.add_header("Host", host)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - URL from compose
            status = response.status
    except urllib.error.HTTPError as exc:
        return f"{url} answered {exc.code}"
    except (OSError, ValueError) as exc:
        return f"{url}: {exc}"
    return None if 200 <= status < 300 else f"{url} answered {status}"


def check_tcp(address: str, timeout: float = TIMEOUT_SECONDS) -> str | None:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout):
            return None
    except (OSError, ValueError) as exc:
        return f"{address}: {exc}"


def check_fresh(pattern: str, seconds: float, now: float | None = None) -> str | None:
    now = time.time() if now is None else now
    mtimes = [os.path.getmtime(path) for path in glob.glob(pattern)]
    if not mtimes:
        return f"no file matches {pattern}"
    age = now - max(mtimes)
    return None if age <= seconds else f"{pattern} last written {age:.0f} s ago (> {seconds:g})"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    checks = {"http": (check_http, 1), "tcp": (check_tcp, 1), "fresh": (check_fresh, 2)}
    if not args or args[0] not in checks or len(args) != 1 + checks[args[0]][1]:
        print("usage: healthcheck http URL | tcp HOST:PORT | fresh GLOB SECONDS", file=sys.stderr)
        return 2
    check, _ = checks[args[0]]
    params = args[1:]
    if args[0] == "fresh":
        try:
            params = [params[0], float(params[1])]
        except ValueError:
            print(f"not a number of seconds: {params[1]!r}", file=sys.stderr)
            return 2
    problem = check(*params)
    if problem is not None:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
