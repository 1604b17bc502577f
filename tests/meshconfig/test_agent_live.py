"""The real ``canopy-agent`` process against the real agent server (uvicorn, started as a
subprocess on the test database, as ``make run`` starts it), in directory mode.

Everything between them is real: HTTP long polls, PostgreSQL NOTIFY wake-ups, the ACK/NACK
reports and the status they produce. Rollouts are made through the room's services, as the
user API does.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from django.conf import settings

from agent.appliers import read_revision
from backend.meshconfig import agent_selectors, selectors, services
from backend.meshconfig.models import ClusterStatus
from backend.tenancy.models import Scope
from tests.workers import ROOT, kill, wait_until, worker_database_url

AGENT_BIN = Path(sys.executable).parent / "canopy-agent"
# Long enough that only a wake-up (not the end of a poll) can explain a quick sync.
AGENT_WAIT = 30


def vs(host: str, subset: str | None = None, name: str | None = None) -> dict:
    destination = {"host": host, **({"subset": subset} if subset else {})}
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": name or host, "namespace": "shop"},
        "spec": {"hosts": [host], "http": [{"route": [{"destination": destination}]}]},
    }


def dr(host: str) -> dict:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": {"name": host, "namespace": "shop"},
        "spec": {"host": host, "subsets": [{"name": "v1", "labels": {"version": "v1"}}]},
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AgentServer:
    """``python -m backend.meshconfig.agent_server`` on a fixed port, restartable."""

    def __init__(self, log_path: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        env = {
            **os.environ,
            "DATABASE_URL": worker_database_url(),
            "REDIS_URL": settings.REDIS_URL,
            "PYTHONUNBUFFERED": "1",
        }
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "backend.meshconfig.agent_server",
                    "--bind",
                    f"127.0.0.1:{self.port}",
                ],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

        def healthy():
            if self.proc.poll() is not None:
                raise AssertionError(f"agent server exited: {self.log_path.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=1) as r:
                    return r.status == 200
            except OSError:
                return False

        wait_until(healthy, 30, "the agent server did not start", interval=0.1)

    def stop(self) -> None:
        if self.proc is not None:
            kill(self.proc, signal.SIGTERM)
            self.proc = None

    def waiting(self) -> int:
        with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as r:
            return json.load(r)["waiting"]


@pytest.fixture(autouse=True)
def _agent_caches():
    agent_selectors.caches_clear()


@pytest.fixture(scope="module")
def agent_server(tmp_path_factory):
    srv = AgentServer(tmp_path_factory.mktemp("agent-server") / "server.log")
    yield srv
    srv.stop()


@pytest.fixture
def server(agent_server, transactional_db):
    """The module's server (started once; restarted if a test stopped it), on committed data."""
    if agent_server.proc is None or agent_server.proc.poll() is not None:
        agent_server.start()
    return agent_server


def _without_dac_override():
    """Root ignores permission bits; a real agent runs as an ordinary user. Dropping these
    capabilities from the child's bounding set (prctl PR_CAPBSET_DROP) makes a read-only
    directory read-only for it too."""
    if os.geteuid() != 0:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2, 3):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER
        if libc.prctl(24, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


class AgentProcess:
    def __init__(self, proc: subprocess.Popen, log_path: Path):
        self.proc = proc
        self.log_path = log_path

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def events(self, name: str) -> list[str]:
        return [line for line in self.log().splitlines() if f"event={name}" in line]


@contextmanager
def canopy_agent(server: AgentServer, token: str, directory: Path, log_path: Path, *extra):
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [
                str(AGENT_BIN),
                "--url",
                server.url,
                "--token",
                token,
                "--dir",
                str(directory),
                "--wait",
                str(AGENT_WAIT),
                "--retry-failed-after",
                "1",
                *extra,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_without_dac_override,
        )
    agent = AgentProcess(proc, log_path)
    try:
        yield agent
    finally:
        kill(proc, signal.SIGTERM)


def status_of(cluster) -> tuple[str, int | None, int | None, dict]:
    status = (
        ClusterStatus.objects.for_org(cluster.org_id)
        .select_related("desired", "applied")
        .get(cluster_id=cluster.pk)
    )
    return (
        selectors.cluster_state(status),
        status.desired.number if status.desired_id else None,
        status.applied.number if status.applied_id else None,
        status.error,
    )


def publish(org, resources, cluster_names):
    revision = services.revision_publish(org=org, resources=resources, force=True).revision
    services.rollout_create(org=org, revision=revision.number, clusters=cluster_names)
    return revision


def synced_at(cluster, number):
    def check():
        state, desired, applied, _ = status_of(cluster)
        return state == "SYNCED" and desired == applied == number

    return check


def test_publish_writes_files_acks_and_syncs(server, tenants, tmp_path):
    cluster, token = services.cluster_create(org=tenants.org, name="prod")
    target = tmp_path / "mesh"
    with canopy_agent(server, token, target, tmp_path / "agent.log") as agent:
        # Nothing rolled out yet: the agent ACKs the empty bundle and waits.
        wait_until(lambda: agent.events("reported"), 10, "no first report")
        wait_until(lambda: server.waiting() == 1, 10, "the agent is not long-polling")
        assert status_of(cluster)[0] == "SYNCED"

        revision = publish(tenants.org, [vs("reviews", "v1"), dr("reviews")], ["prod"])
        published = time.monotonic()
        wait_until(synced_at(cluster, revision.number), 10, "not SYNCED")
        took = time.monotonic() - published
        # A wake-up, not the end of a 30 s poll (the figure is 2 s; bench/agents.py
        # measures the latency under load, this only rules out a missed notification).
        assert took < 5, f"SYNCED after {took:.1f}s"

    assert read_revision(target) == (revision.number, revision.digest)
    written = yaml.safe_load((target / "VirtualService/shop/reviews.yaml").read_text())
    assert written == vs("reviews", "v1")
    assert (target / "DestinationRule/shop/reviews.yaml").exists()
    for line in agent.events("applied"):
        assert f"revision={revision.number}" in line
    assert len(agent.events("applied")) == 1


def test_nack_when_the_directory_is_not_writable_keeps_the_last_good_files(
    server, tenants, tmp_path
):
    cluster, token = services.cluster_create(org=tenants.org, name="prod")
    target = tmp_path / "mesh"
    good = publish(tenants.org, [vs("reviews")], ["prod"])
    with canopy_agent(server, token, target, tmp_path / "agent.log") as agent:
        wait_until(synced_at(cluster, good.number), 10, "first revision not SYNCED")
        good_text = (target / "VirtualService/shop/reviews.yaml").read_text()

        target.chmod(stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP)
        try:
            bad = publish(tenants.org, [vs("reviews", "v1"), dr("reviews")], ["prod"])

            def nacked():
                state, desired, applied, _ = status_of(cluster)
                return state == "NACK" and desired == bad.number and applied == good.number

            wait_until(nacked, 10, "no NACK")
            error = status_of(cluster)[3]
            assert "not writable" in error["message"] and str(target) in error["message"]
            assert agent.events("nack")
            # The last good revision is still there, whole.
            assert read_revision(target) == (good.number, good.digest)
            assert (target / "VirtualService/shop/reviews.yaml").read_text() == good_text
            assert not (target / "DestinationRule").exists()
        finally:
            target.chmod(stat.S_IRWXU)
        # Fixed: the agent retries the refused revision and catches up.
        wait_until(synced_at(cluster, bad.number), 15, "no retry after the fix")
    assert read_revision(target) == (bad.number, bad.digest)


def test_rollback_restores_the_previous_files(server, tenants, tmp_path):
    cluster, token = services.cluster_create(org=tenants.org, name="prod")
    target = tmp_path / "mesh"
    first = publish(tenants.org, [vs("reviews")], ["prod"])
    with canopy_agent(server, token, target, tmp_path / "agent.log"):
        wait_until(synced_at(cluster, first.number), 10, "first not SYNCED")
        second = publish(tenants.org, [vs("reviews", "v1"), dr("reviews")], ["prod"])
        wait_until(synced_at(cluster, second.number), 10, "second not SYNCED")
        assert (target / "DestinationRule/shop/reviews.yaml").exists()

        published, _ = services.revision_rollback(org=tenants.org, number=first.number)
        rolled_back = published.revision
        assert rolled_back.number == second.number + 1
        wait_until(synced_at(cluster, rolled_back.number), 10, "rollback not SYNCED")
    assert read_revision(target) == (rolled_back.number, first.digest)
    assert not (target / "DestinationRule").exists()
    assert yaml.safe_load((target / "VirtualService/shop/reviews.yaml").read_text()) == vs(
        "reviews"
    )


def test_server_restart_during_a_long_poll(server, tenants, tmp_path):
    cluster, token = services.cluster_create(org=tenants.org, name="prod")
    target = tmp_path / "mesh"
    with canopy_agent(server, token, target, tmp_path / "agent.log") as agent:
        wait_until(lambda: server.waiting() == 1, 10, "the agent is not long-polling")
        server.stop()  # the held request dies with the server
        revision = publish(tenants.org, [vs("reviews")], ["prod"])  # nobody listens now
        wait_until(lambda: agent.events("unreachable"), 10, "the agent did not notice")
        server.start()
        wait_until(synced_at(cluster, revision.number), 30, "not SYNCED after the restart")
        assert agent.proc.poll() is None
    assert read_revision(target) == (revision.number, revision.digest)


def test_two_agents_on_two_clusters_follow_their_own_revisions(server, tenants, tmp_path):
    prod, prod_token = services.cluster_create(org=tenants.org, name="prod")
    staging, staging_token = services.cluster_create(org=tenants.org, name="staging")
    one = publish(tenants.org, [vs("reviews")], ["prod", "staging"])
    with (
        canopy_agent(server, prod_token, tmp_path / "prod", tmp_path / "prod.log"),
        canopy_agent(server, staging_token, tmp_path / "staging", tmp_path / "staging.log"),
    ):
        wait_until(synced_at(prod, one.number), 10, "prod not SYNCED")
        wait_until(synced_at(staging, one.number), 10, "staging not SYNCED")
        two = publish(tenants.org, [vs("reviews", "v1"), dr("reviews")], ["staging"])
        wait_until(synced_at(staging, two.number), 10, "staging not on the new revision")
        # prod was not part of the rollout: still on the first, still in sync.
        assert status_of(prod)[:3] == ("SYNCED", one.number, one.number)
    assert read_revision(tmp_path / "prod") == (one.number, one.digest)
    assert read_revision(tmp_path / "staging") == (two.number, two.digest)


def _get(url, token, headers=None):
    request = urllib.request.Request(
        url, headers={"Authorization": f"Bearer {token}", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, r.headers, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, json.loads(exc.read() or b"null")


def _post(url, token, body):
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def test_isolation_other_tokens_see_nothing(server, tenants):
    cluster, token = services.cluster_create(org=tenants.org, name="prod")
    revision = publish(tenants.org, [vs("reviews")], ["prod"])
    config = f"{server.url}/api/v1/agent/config"
    status_url = f"{server.url}/api/v1/agent/status"

    code, headers, body = _get(config, token)
    assert code == 200 and body["revision"] == revision.number
    assert headers["ETag"] == f'"{revision.digest}"'

    # Another org's cluster token gets its own (empty) bundle, never ours.
    _, other_token = services.cluster_create(org=tenants.other_org, name="prod")
    code, headers, body = _get(config, other_token)
    assert code == 200 and body["revision"] is None and body["resources"] == []
    assert revision.digest not in headers["ETag"]
    code, body = _post(
        status_url, other_token, {"revision": revision.number, "attempt_id": "x1", "state": "ACK"}
    )
    assert code == 400  # our revision numbers do not exist in its org
    assert status_of(cluster)[2] is None

    # User tokens, of this org or another, even with every scope, are no cluster's token.
    for user_token in (tenants.outsider_token(), tenants.token([Scope.ADMIN])):
        assert _get(config, user_token)[0] == 404
        assert (
            _post(status_url, user_token, {"revision": 1, "attempt_id": "a", "state": "ACK"})[0]
            == 404
        )
    assert _get(config, "cnp_not-a-token")[0] == 401
    assert _get(config, "")[0] == 401


def test_reports_are_idempotent_per_attempt_and_input_is_bounded(server, tenants):
    cluster, token = services.cluster_create(org=tenants.org, name="prod")
    revision = publish(tenants.org, [vs("reviews")], ["prod"])
    url = f"{server.url}/api/v1/agent/status"
    nack = {
        "revision": revision.number,
        "attempt_id": "a-1",
        "state": "NACK",
        "error": {"resource": "VirtualService/shop/reviews", "message": "boom"},
    }
    assert _post(url, token, nack) == (
        200,
        {"cluster": "prod", "state": "NACK", "desired": revision.number, "applied": None},
    )
    ack = {"revision": revision.number, "attempt_id": "a-2", "state": "ACK"}
    assert _post(url, token, ack)[1]["state"] == "SYNCED"
    # The NACK's attempt again (a retry after a lost answer) changes nothing.
    assert _post(url, token, nack)[1]["state"] == "SYNCED"
    assert len(selectors.agent_reports(cluster=cluster)) == 2

    assert _post(url, token, {**ack, "state": "MAYBE"})[0] == 400
    assert _post(url, token, {**ack, "revision": 999})[0] == 400
    assert _post(url, token, ["not", "an", "object"])[0] == 400
    assert _post(url, token, {**ack, "error": {"message": "x" * 70_000}})[0] == 413
    config = f"{server.url}/api/v1/agent/config"
    assert _get(config + "?wait=600", token)[0] == 400
    assert _get(config + "?wait=soon", token)[0] == 400


def test_long_poll_answers_304_after_the_wait_and_wakes_on_rollout(server, tenants):
    _, token = services.cluster_create(org=tenants.org, name="prod")
    first = publish(tenants.org, [vs("reviews")], ["prod"])
    config = f"{server.url}/api/v1/agent/config"
    etag = {"If-None-Match": f'"{first.digest}"'}
    started = time.monotonic()
    code, headers, _ = _get(config + "?wait=1", token, etag)
    assert code == 304 and headers["ETag"] == f'"{first.digest}"'
    assert time.monotonic() - started >= 1

    import threading

    answers = []
    poll = threading.Thread(target=lambda: answers.append(_get(config + "?wait=20", token, etag)))
    poll.start()
    wait_until(lambda: server.waiting() == 1, 10, "the poll is not held")
    second = publish(tenants.org, [vs("reviews", "v1"), dr("reviews")], ["prod"])
    poll.join(10)
    code, headers, body = answers[0]
    assert code == 200 and body["revision"] == second.number
    assert headers["ETag"] == f'"{second.digest}"'


FAKE_KUBECTL = """#!/bin/sh
python3 -c 'import json, sys; print(json.dumps(sys.argv[1:]))' "$@" >> "$KUBECTL_LOG"
exit 0
"""


def test_kubectl_mode_once_applies_and_acks(server, tenants, tmp_path):
    """``--kubectl --once`` through the real process. ``kubectl`` is a fake script first on
    PATH that records its arguments: a test double for a binary (and a Kubernetes API server)
    this machine cannot have. It shows the commands the agent runs and that it ACKs after
    them; what Kubernetes would do with them is not tested here."""
    cluster, token = services.cluster_create(org=tenants.org, name="prod")
    revision = publish(tenants.org, [vs("reviews", "v1"), dr("reviews")], ["prod"])
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "kubectl").write_text(FAKE_KUBECTL)
    (bin_dir / "kubectl").chmod(0o755)
    calls = tmp_path / "kubectl.log"
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "KUBECTL_LOG": str(calls),
    }
    done = subprocess.run(
        [
            str(AGENT_BIN),
            "--url",
            server.url,
            "--token",
            token,
            "--kubectl",
            "--context",
            "east",
            "--state-dir",
            str(tmp_path / "state"),
            "--once",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    argv = [json.loads(line) for line in calls.read_text().splitlines()]
    assert [a[:3] for a in argv] == [["--context", "east", "apply"]] * 2
    assert "--dry-run=server" in argv[0] and "--server-side" in argv[1]
    assert status_of(cluster)[:3] == ("SYNCED", revision.number, revision.number)
    assert "event=applied" in done.stderr and "event=reported" in done.stderr


def test_main_server_answers_at_once(tenants, client, settings):
    """On the main (WSGI) server the same API never holds a request: ``wait`` counts as 0."""
    cluster, token = services.cluster_create(org=tenants.org, name="prod")
    revision = publish(tenants.org, [vs("reviews")], ["prod"])
    auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    answer = client.get("/api/v1/agent/config", **auth)
    assert answer.status_code == 200 and answer.json()["revision"] == revision.number
    started = time.monotonic()
    held = client.get("/api/v1/agent/config?wait=30", HTTP_IF_NONE_MATCH=answer["ETag"], **auth)
    assert held.status_code == 304 and time.monotonic() - started < 5
    assert held["Canopy-Agent-Url"] == settings.AGENT_PUBLIC_URL
    report = client.post(
        "/api/v1/agent/status",
        data={"revision": revision.number, "attempt_id": "w-1", "state": "ACK"},
        content_type="application/json",
        **auth,
    )
    assert report.status_code == 200 and report.json()["state"] == "SYNCED"
    outsider = {"HTTP_AUTHORIZATION": f"Bearer {tenants.outsider_token()}"}
    assert client.get("/api/v1/agent/config", **outsider).status_code == 404
    assert status_of(cluster)[2] == revision.number


def test_an_agent_given_the_web_url_moves_its_long_polls_to_the_agent_server(
    server, tenants, tmp_path, live_server, settings
):
    """The dashboard prints the public (web) URL; the web server answers at once and names the
    agent server, where the agent then long-polls."""
    host = urlsplit(live_server.url).hostname  # the agent follows a hint on its own host only
    settings.AGENT_PUBLIC_URL = f"http://{host}:{server.port}"
    cluster, token = services.cluster_create(org=tenants.org, name="prod")
    web = AgentServer.__new__(AgentServer)
    web.url = live_server.url
    with canopy_agent(web, token, tmp_path / "mesh", tmp_path / "agent.log") as agent:
        wait_until(lambda: agent.events("url_moved"), 10, "the agent did not move")
        assert f"url={settings.AGENT_PUBLIC_URL}" in agent.events("url_moved")[0]
        wait_until(lambda: server.waiting() == 1, 10, "not long-polling on the agent server")
        revision = publish(tenants.org, [vs("reviews")], ["prod"])
        wait_until(synced_at(cluster, revision.number), 10, "not SYNCED")


def test_a_lost_listen_connection_misses_nothing(server, tenants, tmp_path):
    """The agent server's LISTEN connection is killed; a rollout made before it is back still
    reaches the waiting agent (on reconnecting, the listener wakes every waiter)."""
    from django.db import connection

    cluster, token = services.cluster_create(org=tenants.org, name="prod")
    with canopy_agent(server, token, tmp_path / "mesh", tmp_path / "agent.log"):
        wait_until(lambda: server.waiting() == 1, 10, "the agent is not long-polling")
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE query ILIKE 'LISTEN canopy_meshconfig%%' AND datname = current_database()"
            )
            assert cursor.fetchone() == (True,)
        revision = publish(tenants.org, [vs("reviews")], ["prod"])
        wait_until(synced_at(cluster, revision.number), 15, "the rollout was missed")
