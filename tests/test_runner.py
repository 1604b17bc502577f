"""``make run``'s process table (backend/runner.py): the optional ingest pool and the CPU
priority of the background processes."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from backend.runner import BACKGROUND, PROCESSES, commands, processes

VALUES = {
    "bind": "127.0.0.1:8000",
    "web_workers": 2,
    "worker_concurrency": 2,
    "data_dir": "/data",
    "otlp_grpc_bind": "127.0.0.1:4317",
    "agent_bind": "127.0.0.1:8001",
    "ingest_bind": "127.0.0.1:8002",
    "ingest_workers": 3,
}


def test_one_web_pool_unless_an_ingest_address_is_set():
    assert set(processes(ingest_pool=False)) == set(PROCESSES)
    argv = commands(VALUES, bin_dir="/venv/bin", ingest_pool=False, background_nice=0)
    assert "web-ingest" not in argv
    assert argv["web"][0] == "/venv/bin/gunicorn" and "127.0.0.1:8000" in argv["web"]


def test_the_ingest_pool_is_the_web_pool_on_its_own_address():
    argv = commands(VALUES, bin_dir="/venv/bin", ingest_pool=True, background_nice=0)
    web, ingest = argv["web"], argv["web-ingest"]
    assert ingest[0] == "/venv/bin/gunicorn"
    assert ingest[ingest.index("--bind") + 1] == "127.0.0.1:8002"
    assert ingest[ingest.index("--workers") + 1] == "3"
    assert web[web.index("--bind") + 1] == "127.0.0.1:8000"
    # everything else (threads, logging, timeouts) as the web pool's
    differ = [(a, b) for a, b in zip(web, ingest, strict=True) if a != b]
    assert differ == [("127.0.0.1:8000", "127.0.0.1:8002"), ("2", "3")]


def test_background_processes_run_niced_and_the_query_path_does_not():
    assert {"worker", "web-ingest"} == BACKGROUND
    argv = commands(VALUES, bin_dir="/venv/bin", ingest_pool=True, background_nice=5)
    assert argv["web"][0] == "/venv/bin/gunicorn"  # queries and pages: not niced
    assert argv["web-ingest"][:4] == ["nice", "-n", "5", "/venv/bin/gunicorn"]
    # the worker is respawned: respawn runs `nice ... celery`
    worker = argv["worker"]
    assert worker[:4] == ["/venv/bin/python", "-m", "backend.respawn", "--"]
    assert worker[4:8] == ["nice", "-n", "5", "/venv/bin/celery"]
    for name in ("beat", "otlp-grpc", "agent-api"):
        assert "nice" not in argv[name]
    plain = commands(VALUES, bin_dir="/venv/bin", ingest_pool=True, background_nice=0)
    assert all("nice" not in a for a in plain.values())


def test_settings(monkeypatch):
    from backend.envconfig import env_hostport, env_int

    monkeypatch.setenv("CANOPY_INGEST_BIND", "nonsense")
    with pytest.raises(ImproperlyConfigured):
        env_hostport("CANOPY_INGEST_BIND", "127.0.0.1:0")
    monkeypatch.setenv("CANOPY_BACKGROUND_NICE", "-5")  # raising priority needs root: refused
    with pytest.raises(ImproperlyConfigured):
        env_int("CANOPY_BACKGROUND_NICE", 0, minimum=0)
