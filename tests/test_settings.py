"""Importing the settings starts nothing; every value is read strictly from the environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from backend import embedded
from backend.envconfig import env_hostport, env_required

ROOT = Path(__file__).resolve().parent.parent
SETUP = (
    "import os, django; os.environ['DJANGO_SETTINGS_MODULE'] = 'backend.settings'; "
    "django.setup(); from django.conf import settings; print(settings.DATABASE_URL)"
)


def _import_settings(data_dir: Path, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    return subprocess.run(
        [sys.executable, "-c", SETUP],
        cwd=ROOT,
        env={**clean, "CANOPY_DATA_DIR": str(data_dir), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError):
            continue
        if text in cmdline:
            found.append(cmdline)
    return found


def test_without_database_url_importing_settings_fails_clearly_and_starts_nothing(tmp_path):
    result = _import_settings(tmp_path)
    assert result.returncode != 0
    assert "ImproperlyConfigured: DATABASE_URL is not set" in result.stderr
    assert "make run" in result.stderr
    assert "python -m backend.embedded exec" in result.stderr
    # No server was started for this data folder: no data of theirs, no process, no socket.
    assert not (tmp_path / "postgres").exists()
    assert not (tmp_path / "redis").exists()
    assert _processes_mentioning(str(tmp_path)) == []
    assert embedded.postgres_url_if_running(tmp_path) is None
    assert embedded.redis_url_if_running(tmp_path) is None


def test_without_redis_url_importing_settings_fails_clearly(tmp_path):
    result = _import_settings(tmp_path, DATABASE_URL="postgres://canopy@127.0.0.1:1/canopy")
    assert result.returncode != 0
    assert "ImproperlyConfigured: REDIS_URL is not set" in result.stderr
    assert not (tmp_path / "redis").exists()


def test_with_urls_importing_settings_connects_to_nothing(tmp_path):
    # Nothing listens on port 1: importing settings and setting Django up must not care.
    result = _import_settings(
        tmp_path,
        DATABASE_URL="postgres://canopy@127.0.0.1:1/canopy",
        REDIS_URL="redis://127.0.0.1:1/0",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "postgres://canopy@127.0.0.1:1/canopy"
    assert _processes_mentioning(str(tmp_path)) == []


def test_a_command_beside_running_embedded_servers_finds_them():
    running = embedded.postgres_url_if_running(settings.DATA_DIR)
    if running is None or running != settings.DATABASE_URL:
        pytest.skip("the suite runs on PostgreSQL given by DATABASE_URL, not the embedded one")
    result = _import_settings(settings.DATA_DIR)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == settings.DATABASE_URL


def test_a_stale_postgres_pid_file_is_not_a_running_server(tmp_path):
    pgdata = tmp_path / "postgres"
    pgdata.mkdir()
    dead = subprocess.Popen(["true"])
    dead.wait()
    lines = [str(dead.pid), str(pgdata), "0", "5432", str(tmp_path), "", "0 0", "ready"]
    (pgdata / "postmaster.pid").write_text("\n".join(lines) + "\n")
    assert embedded.postgres_url_if_running(tmp_path) is None
    (pgdata / "postmaster.pid").write_text(f"{os.getpid()}\n{pgdata}\n")  # still starting
    assert embedded.postgres_url_if_running(tmp_path) is None


def test_env_required_and_env_hostport(monkeypatch):
    monkeypatch.delenv("CANOPY_TEST_URL", raising=False)
    assert env_required("CANOPY_TEST_URL", fallback=lambda: "found", missing="x") == "found"
    with pytest.raises(ImproperlyConfigured, match="CANOPY_TEST_URL is not set; start it"):
        env_required("CANOPY_TEST_URL", fallback=lambda: None, missing="start it")
    monkeypatch.setenv("CANOPY_TEST_URL", "given")
    assert env_required("CANOPY_TEST_URL", fallback=lambda: "found", missing="x") == "given"

    monkeypatch.delenv("CANOPY_TEST_BIND", raising=False)
    assert env_hostport("CANOPY_TEST_BIND", "127.0.0.1:4317") == "127.0.0.1:4317"
    for good in ("0.0.0.0:4317", "[::1]:4317", "localhost:0"):
        monkeypatch.setenv("CANOPY_TEST_BIND", good)
        assert env_hostport("CANOPY_TEST_BIND", "127.0.0.1:4317") == good
    for bad in ("4317", ":4317", "host:port", "host:70000"):
        monkeypatch.setenv("CANOPY_TEST_BIND", bad)
        with pytest.raises(ImproperlyConfigured, match="not a host:port address"):
            env_hostport("CANOPY_TEST_BIND", "127.0.0.1:4317")
