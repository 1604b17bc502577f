"""What can be checked of the production stack without a Docker engine.

There is no Docker daemon (nor the compose plugin) on the machines this suite runs on: the
stack was never built or started here. These tests check it structurally (every long-running
service restarts and has a health check, the start-up order, one consumer per Celery queue,
commands that name modules and entry points which exist) and run the health-check helper
itself against real sockets.
"""

from __future__ import annotations

import http.server
import importlib.util
import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
import yaml

from backend import healthcheck
from backend.celery import Queue

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker" / "compose.yaml"
CANOPY_IMAGE_SERVICES = {
    "migrate",
    "web",
    "ingest",
    "agent-api",
    "otlp-grpc",
    "beat",
    *(f"worker-{q.value}" for q in Queue),
}


@pytest.fixture(scope="module")
def services() -> dict:
    return yaml.safe_load(COMPOSE.read_text())["services"]


def _one_shot(service: dict) -> bool:
    return str(service.get("restart", "no")) == "no"


def _argv(service: dict) -> list[str]:
    command = service.get("command", [])
    return command if isinstance(command, list) else command.split()


def _worker_queues(service: dict) -> set[str] | None:
    argv = _argv(service)
    if argv[:4] != ["celery", "-A", "backend", "worker"]:
        return None
    return set(argv[argv.index("--queues") + 1].split(","))


def test_compose_has_every_process(services):
    assert {"postgres", "redis"} | CANOPY_IMAGE_SERVICES == set(services)
    assert "--appendonly" in services["redis"]["command"]


def test_every_long_running_service_restarts_and_has_a_health_check(services):
    long_running = {name for name, s in services.items() if not _one_shot(s)}
    assert long_running == set(services) - {"migrate"}
    for name in long_running:
        service = services[name]
        assert service["restart"] == "unless-stopped", name
        check = service.get("healthcheck")
        assert check and check["test"][0] in ("CMD", "CMD-SHELL"), name
        assert len(check["test"]) > 1, name


def test_start_order_waits_for_health_and_the_migration(services):
    assert services["migrate"]["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
    }
    for name in CANOPY_IMAGE_SERVICES - {"migrate"}:
        assert services[name]["depends_on"] == {
            "postgres": {"condition": "service_healthy"},
            "redis": {"condition": "service_healthy"},
            "migrate": {"condition": "service_completed_successfully"},
        }, name
    assert _argv(services["migrate"])[:3] == ["python", "manage.py", "migrate"]
    assert "postgres" in services["postgres"]["image"]
    assert "pg_isready" in services["postgres"]["healthcheck"]["test"]
    assert services["redis"]["healthcheck"]["test"][1:] == ["redis-cli", "ping"]


def _routed_queues() -> set[str]:
    """Every queue a task of the code can be sent to: each registered task through Celery's
    own router (TASK_ROUTES, then the default queue), plus the routes' targets."""
    from backend.celery import TASK_ROUTES, app

    app.loader.import_default_modules()
    router = app.amqp.router
    queues = set()
    for name in app.tasks:
        if name.startswith("celery."):
            continue
        queue = router.route({}, name)["queue"]
        queues.add(queue.name)
    queues |= {route["queue"] for route in TASK_ROUTES.values()}
    return queues


def test_every_queue_has_its_own_worker_service(services):
    routed = _routed_queues()
    assert routed <= {q.value for q in Queue}, "a task goes to a queue not named in Queue"
    consumers: dict[str, list[str]] = {}
    for name, service in services.items():
        queues = _worker_queues(service)
        if queues is None:
            continue
        assert len(queues) == 1, f"{name} consumes {queues}: one queue per worker service"
        consumers.setdefault(queues.pop(), []).append(name)
    assert set(consumers) == {q.value for q in Queue}
    assert all(len(names) == 1 for names in consumers.values()), consumers
    assert routed <= set(consumers)
    # each worker's health check pings that very worker (its --hostname)
    for queue, (name,) in consumers.items():
        argv = _argv(services[name])
        assert argv[argv.index("--hostname") + 1] == f"{queue}@%h"
        # `$$` is compose's escape: the shell of the check sees $HOSTNAME (Celery's %h)
        assert f"--destination {queue}@$$HOSTNAME" in services[name]["healthcheck"]["test"][1]


def _gunicorn_argv(service: dict) -> list[str]:
    """The gunicorn command of a `sh -c "collectstatic && exec gunicorn ..."` service."""
    argv = _argv(service)
    assert argv[:2] == ["sh", "-c"] and "manage.py collectstatic" in argv[2], argv
    return argv[2].split("exec ", 1)[1].split()


def _option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_ingest_has_a_gunicorn_pool_of_its_own(services):
    """As `make run` with CANOPY_INGEST_BIND (backend/runner.py: web-ingest): the web's own
    application and options on another port, published, and checked on that port."""
    web, ingest = _gunicorn_argv(services["web"]), _gunicorn_argv(services["ingest"])
    assert ingest[:2] == web[:2] == ["gunicorn", "backend.wsgi"]
    web_port = _option(web, "--bind").rpartition(":")[2]
    port = _option(ingest, "--bind").rpartition(":")[2]
    assert _option(ingest, "--bind") == f"0.0.0.0:{port}" and port != web_port
    assert services["ingest"]["ports"] == [f"{port}:{port}"]
    assert services["ingest"]["healthcheck"]["test"][-1] == f"http://127.0.0.1:{port}/readyz"
    for option in ("--threads", "--access-logfile", "--logger-class", "--graceful-timeout"):
        assert _option(ingest, option) == _option(web, option), option
    assert services["ingest"]["environment"] == services["web"]["environment"]
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    expose = next(line for line in dockerfile.splitlines() if line.startswith("EXPOSE "))
    assert {web_port, port} <= set(expose.split()[1:])


def _module_exists(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def test_commands_name_modules_and_entry_points_that_exist(services):
    from django.core.management import get_commands

    for name in CANOPY_IMAGE_SERVICES:
        argv = _argv(services[name])
        if argv[0] == "sh":  # web: `sh -c "collectstatic && exec gunicorn ..."`
            script = argv[2]
            assert "manage.py collectstatic" in script
            argv = script.split("exec ", 1)[1].split()
        if argv[0] == "python" and argv[1] == "-m":
            assert _module_exists(argv[2]), (name, argv[2])
        elif argv[0] == "python" and argv[1] == "manage.py":
            assert argv[2] in get_commands(), (name, argv[2])
        elif argv[0] == "gunicorn":
            module = argv[1].partition(":")[0]
            assert _module_exists(module), argv[1]
            logger = argv[argv.index("--logger-class") + 1].rsplit(".", 1)
            assert _module_exists(logger[0]), logger
        elif argv[0] == "celery":
            assert argv[1:3] == ["-A", "backend"] and argv[3] in ("worker", "beat"), argv
        else:
            pytest.fail(f"{name}: unknown command {argv}")
        if argv[0] in ("gunicorn", "celery"):
            assert _module_exists(argv[0]), f"{argv[0]} is not installed"
        test = services[name].get("healthcheck", {}).get("test", [])
        if test[1:2] == ["python"]:
            assert test[2:4] == ["-m", "backend.healthcheck"], test
            assert test[4] in ("http", "tcp", "fresh"), test


def test_dockerfile_copies_what_the_commands_need():
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    for folder in ("backend", "ingest", "web", "agent", "manage.py"):
        assert f"COPY {folder} " in dockerfile, folder


def test_compose_config_with_the_docker_cli():
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker CLI here")
    probe = subprocess.run(
        [docker, "compose", "version"], capture_output=True, text=True, timeout=30
    )
    if probe.returncode != 0:
        pytest.skip(f"the docker CLI has no compose plugin here: {probe.stderr.strip()[:200]}")
    result = subprocess.run(
        [docker, "compose", "-f", str(COMPOSE), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "SECRET_KEY": "test"},
    )
    assert result.returncode == 0, result.stderr


def test_runner_worker_consumes_every_queue():
    from backend.runner import PROCESSES

    worker = PROCESSES["worker"]
    assert set(worker[worker.index("--queues") + 1].split(",")) == {q.value for q in Queue}


# ------------------------------------------------------------- the health-check helper itself


class _Handler(http.server.BaseHTTPRequestHandler):
    hosts: list[str] = []

    def do_GET(self):
        self.hosts.append(self.headers["Host"])
        self.send_response(200 if self.path == "/ok" else 503)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def http_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Handler.hosts = []
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_http_check(http_server, monkeypatch):
    monkeypatch.setenv("ALLOWED_HOSTS", "*,.example.org,canopy.example.com,localhost")
    assert healthcheck.main(["http", f"{http_server}/ok"]) == 0
    assert _Handler.hosts == ["canopy.example.com"]  # a name the server accepts
    assert healthcheck.main(["http", f"{http_server}/down"]) == 1
    assert "503" in healthcheck.check_http(f"{http_server}/down")


def test_tcp_check():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert healthcheck.main(["tcp", f"127.0.0.1:{port}"]) == 0
    assert healthcheck.main(["tcp", f"127.0.0.1:{port}"]) == 1  # closed now


def test_fresh_check(tmp_path):
    schedule = tmp_path / "celerybeat-schedule.db"
    pattern = str(tmp_path / "celerybeat-schedule*")
    assert healthcheck.main(["fresh", pattern, "600"]) == 1  # not written yet
    schedule.write_bytes(b"x")
    assert healthcheck.main(["fresh", pattern, "600"]) == 0
    old = time.time() - 900
    os.utime(schedule, (old, old))
    assert healthcheck.main(["fresh", pattern, "600"]) == 1
    assert healthcheck.main(["fresh", pattern, "soon"]) == 2
