"""Strict readers for settings that come from the environment.

Anything that is not clearly valid raises ``ImproperlyConfigured`` at start-up: a typo in
``DEBUG=ture`` must not silently turn debug off (or on) in production.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str | None = None) -> str | None:
    """A string; ``NAME_FILE`` (a path) wins over ``NAME`` so secrets can come from files."""
    file_path = os.environ.get(f"{name}_FILE")
    if file_path:
        try:
            return Path(file_path).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={file_path!r} cannot be read: {exc}") from exc
    return os.environ.get(name, default)


def env_required(name: str, *, fallback: Callable[[], str | None], missing: str) -> str:
    """``NAME`` (or ``NAME_FILE``), else what ``fallback`` finds; neither is a start-up error
    that says ``missing`` (how to provide it)."""
    value = env_str(name) or fallback()
    if not value:
        raise ImproperlyConfigured(f"{name} is not set; {missing}")
    return value


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use true/false, 1/0, yes/no)")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer") from exc
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={value} is below the minimum {minimum}")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_hostport(name: str, default: str) -> str:
    """A listen address ``host:port`` (``[::1]:4317`` for IPv6; port 0 picks a free one)."""
    raw = os.environ.get(name)
    value = default if raw is None or raw.strip() == "" else raw.strip()
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ImproperlyConfigured(f"{name}={value!r} is not a host:port address")
    return value


def data_dir() -> Path:
    """``CANOPY_DATA_DIR``, by default ``.canopy`` at the repository root."""
    default = Path(__file__).resolve().parent.parent / ".canopy"
    path = Path(os.environ.get("CANOPY_DATA_DIR") or default).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path
