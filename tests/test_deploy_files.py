"""What can be checked of the production stack without a Docker engine."""

from pathlib import Path

import yaml

from backend.celery import Queue

ROOT = Path(__file__).resolve().parent.parent


def test_compose_stack_has_every_process_and_consumes_every_queue():
    compose = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())
    services = compose["services"]
    assert {"postgres", "redis", "web", "worker", "beat", "migrate", "otlp-grpc"} <= set(services)
    assert "--appendonly" in services["redis"]["command"]
    worker = services["worker"]["command"]
    queues = worker[worker.index("--queues") + 1].split(",")
    assert set(queues) == {q.value for q in Queue}


def test_runner_worker_consumes_every_queue():
    from backend.runner import PROCESSES

    worker = PROCESSES["worker"]
    assert set(worker[worker.index("--queues") + 1].split(",")) == {q.value for q in Queue}
