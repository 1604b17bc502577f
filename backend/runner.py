"""``make run``: prepare the database, then run every Canopy process in one foreground command.

Web (gunicorn), the mesh agents' API (uvicorn), the OTLP/gRPC receiver, the Celery ingest
worker and Celery beat run side by side under honcho's process manager, their output
interleaved with a name prefix. Ctrl-C stops them all; the embedded PostgreSQL/Redis (if any)
are stopped afterwards by ``backend.embedded exec``.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys

PROCESSES = {
    "web": [
        "gunicorn",
        "backend.wsgi",
        "--bind",
        "{bind}",
        "--workers",
        "{web_workers}",
        "--threads",
        "4",
        "--access-logfile",
        "-",
        "--access-logformat",
        # gunicorn's default format plus the request id (X-Request-ID of the response)
        '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %({{x-request-id}}o)s',
        "--logger-class",
        "backend.gunicorn_logging.AccessLogger",
        "--graceful-timeout",
        "10",
    ],
    "worker": [
        "celery",
        "-A",
        "backend",
        "worker",
        "--queues",
        "ingest,default,maintenance,rules",
        "--concurrency",
        "{worker_concurrency}",
        "--loglevel",
        "INFO",
        "--without-gossip",
    ],
    "agent-api": ["python", "-m", "backend.meshconfig.agent_server", "--bind", "{agent_bind}"],
    "otlp-grpc": ["python", "-m", "ingest.grpc.server", "--bind", "{otlp_grpc_bind}"],
    "beat": [
        "celery",
        "-A",
        "backend",
        "beat",
        "--loglevel",
        "INFO",
        "--schedule",
        "{data_dir}/celerybeat-schedule",
    ],
}

# Started again when they crash (``backend/respawn.py``): honcho would otherwise end every
# process when one exits. gunicorn's arbiter already replaces its own workers.
RESPAWNED = {"worker", "beat", "otlp-grpc", "agent-api"}


# Work nobody waits for interactively: run at CANOPY_BACKGROUND_NICE (default 0).
BACKGROUND = {"worker", "web-ingest"}


def processes(*, ingest_pool: bool) -> dict[str, list[str]]:
    """``PROCESSES``, plus with ``ingest_pool`` (CANOPY_INGEST_BIND set) a second gunicorn,
    ``web-ingest``, with the web's own arguments on the ingest address."""
    out = dict(PROCESSES)
    if ingest_pool:
        out["web-ingest"] = [
            {"{bind}": "{ingest_bind}", "{web_workers}": "{ingest_workers}"}.get(a, a)
            for a in PROCESSES["web"]
        ]
    return out


def commands(
    values: dict, *, bin_dir: str, ingest_pool: bool, background_nice: int
) -> dict[str, list[str]]:
    """Each process's command line: the venv's programs, the values filled in, the background
    ones under ``nice``, the respawned ones under ``backend.respawn``."""
    out = {}
    for name, argv in processes(ingest_pool=ingest_pool).items():
        argv = [os.path.join(bin_dir, argv[0]), *(a.format(**values) for a in argv[1:])]
        if name in BACKGROUND and background_nice:
            argv = ["nice", "-n", str(background_nice), *argv]
        if name in RESPAWNED:
            argv = [os.path.join(bin_dir, "python"), "-m", "backend.respawn", "--", *argv]
        out[name] = argv
    return out


def prepare() -> None:
    import django
    from django.core.management import call_command

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backend.settings")
    django.setup()
    call_command("migrate", interactive=False, verbosity=0)
    call_command("collectstatic", interactive=False, verbosity=0)
    call_command("bootstrap_demo")


def main() -> int:
    from honcho.manager import Manager
    from honcho.printer import Printer

    # A local `make run` offers open sign-up (/signup) unless told otherwise; production
    # settings keep it off by default.
    os.environ.setdefault("CANOPY_SIGNUP", "true")
    prepare()
    from django.conf import settings

    values = {
        "bind": settings.RUN_BIND,
        "web_workers": settings.RUN_WEB_WORKERS,
        "worker_concurrency": settings.RUN_WORKER_CONCURRENCY,
        "data_dir": str(settings.DATA_DIR),
        "otlp_grpc_bind": settings.OTLP_GRPC_BIND,
        "agent_bind": settings.AGENT_API_BIND,
    }
    if settings.RUN_INGEST_BIND:
        values["ingest_bind"] = settings.RUN_INGEST_BIND
        values["ingest_workers"] = settings.RUN_INGEST_WORKERS
    bin_dir = os.path.dirname(sys.executable)
    # Self-metrics shared by every web and Celery process (prometheus_client's multiprocess
    # mode): a fresh folder each start.
    multiproc = settings.DATA_DIR / "metrics-multiproc"
    shutil.rmtree(multiproc, ignore_errors=True)
    multiproc.mkdir(parents=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PROMETHEUS_MULTIPROC_DIR": str(multiproc)}
    manager = Manager(Printer(sys.stdout))
    for name, argv in commands(
        values,
        bin_dir=bin_dir,
        ingest_pool=bool(settings.RUN_INGEST_BIND),
        background_nice=settings.RUN_BACKGROUND_NICE,
    ).items():
        manager.add_process(name, shlex.join(argv), env=env)
    manager.loop()
    return manager.returncode or 0


if __name__ == "__main__":
    sys.exit(main())
