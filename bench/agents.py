"""Mesh agents: publish-to-ACK latency with 1, 100 and 1,000 agents, and the p95 of ordinary
API requests with 1,000 agents long-polling against none.

    .venv/bin/python -m bench.agents [--agents 1,100,1000] [--rounds 3] [--api-requests 300]

A fresh Canopy (``make run``'s processes: gunicorn, the agent server under uvicorn, workers) on
embedded PostgreSQL and Redis. The agents:

- "canopy-agent": the real agent process in directory mode (one, to keep the machine for the
  server: a thousand Python processes would measure the laptop, not Canopy);
- "simulated": asyncio coroutines in this process that speak the agent protocol exactly as the
  agent does (GET without ETag, ACK, then GET with If-None-Match and ?wait=30; on a new bundle
  POST the ACK and poll again) but write no files.

Latencies start at each cluster's ``desired_at`` (stamped in the rollout's transaction; the
NOTIFY goes out at its commit): "bundle received" ends when a simulated agent has read the new
bundle's 200, "ACK stored" at the status row's ``applied_at`` (stamped by the agent server when
it stores the ACK). Same machine, same clock.
The API reference is the same requests, same server, before any agent connects.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import requests

from bench.harness.canopy import CanopyServer
from bench.harness.table import print_columns

AGENT_BIN = Path(sys.executable).parent / "canopy-agent"
WAIT = 30

_SETUP = """
import json, os
from backend.tenancy.models import Organization
from backend.tenancy.services import token_create
from backend.meshconfig import services
org = Organization.objects.get(slug="bench")
tokens = {}
for i in range(int(os.environ["BENCH_CLUSTERS"])):
    _, secret = services.cluster_create(org=org, name=f"c{i:04d}")
    tokens[f"c{i:04d}"] = secret
_, reader = token_create(org=org, name="bench-reader", scopes=["metrics:read", "config:read"])
with open(os.environ["BENCH_OUT"], "w") as out:
    json.dump({"clusters": tokens, "reader": reader}, out)
"""

_PUBLISH = """
import json, os
from backend.tenancy.models import Organization
from backend.meshconfig import services
org = Organization.objects.get(slug="bench")
n = int(os.environ["BENCH_ROUND"])
vs = {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
      "metadata": {"name": "reviews", "namespace": "shop"},
      "spec": {"hosts": ["reviews"], "http": [
          {"match": [{"headers": {"x-round": {"exact": str(n)}}}],
           "route": [{"destination": {"host": "reviews"}}]},
          {"route": [{"destination": {"host": "reviews"}}]}]}}
published = services.revision_publish(org=org, resources=[vs], force=True)
names = json.loads(os.environ["BENCH_NAMES"])
services.rollout_create(org=org, revision=published.revision.number, clusters=names)
print(published.revision.number)
"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


# ---- a minimal asyncio HTTP/1.1 client (one connection per request, like a poll) ----------


async def http(url: str, method: str, path: str, headers: dict, body: bytes = b""):
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {parts.netloc}", "Connection: close"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        if body:
            lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        await writer.drain()
        raw = await reader.read()
    finally:
        writer.close()
    head, _, payload = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    response_headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        response_headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), response_headers, payload


class SimulatedAgent:
    def __init__(self, url: str, token: str):
        self.url = url
        self.auth = {"Authorization": f"Bearer {token}", "User-Agent": "bench-agent/1"}
        self.etag: str | None = None
        self.acked = 0
        self.received: dict[int, float] = {}  # revision number -> wall clock of the 200

    async def ack(self, document: dict) -> None:
        body = json.dumps(
            {"revision": document["revision"], "attempt_id": str(uuid.uuid4()), "state": "ACK"}
        ).encode()
        status, _, _ = await http(self.url, "POST", "/api/v1/agent/status", self.auth, body)
        if status != 200:
            raise RuntimeError(f"status report answered {status}")
        self.acked += 1

    async def run(self) -> None:
        while True:
            headers = dict(self.auth)
            path = "/api/v1/agent/config"
            if self.etag:
                headers["If-None-Match"] = f'"{self.etag}"'
                path += f"?wait={WAIT}"
            try:
                status, response_headers, payload = await http(self.url, "GET", path, headers)
            except OSError:
                await asyncio.sleep(0.5)
                continue
            if status == 200:
                document = json.loads(payload)
                if document["revision"] is not None:
                    self.received[document["revision"]] = time.time()
                await self.ack(document)
                self.etag = response_headers["etag"].strip('"')
            elif status != 304:
                raise RuntimeError(f"config answered {status}: {payload[:200]!r}")


# ---- the scenarios ----------------------------------------------------------------------


def waiting(server: CanopyServer) -> int:
    return requests.get(server.agent_url + "/healthz", timeout=5).json()["waiting"]


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise RuntimeError(f"timed out waiting for {what}")


def publish_round(server: CanopyServer, names: list[str], n: int) -> list[float]:
    """Roll a new revision out to ``names``; the ACK latency of each, in seconds."""
    return publish_round_detail(server, names, n)[1]


def publish_round_detail(server: CanopyServer, names: list[str], n: int):
    """(revision number, ACK latencies, {cluster name: desired_at epoch})."""
    out = server._manage(
        "shell",
        "-c",
        _PUBLISH,
        env={"BENCH_ROUND": str(n), "BENCH_NAMES": json.dumps(names)},
    )
    number = int(out.split()[-1])
    query = (
        "SELECT extract(epoch FROM s.applied_at - s.desired_at) FROM mesh_cluster_status s "
        "JOIN mesh_clusters c ON c.id = s.cluster_id JOIN mesh_revisions r ON r.id = s.applied_id "
        "WHERE c.name = ANY(%s) AND r.number = %s AND s.desired_id = s.applied_id"
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        rows = server.sql(query, [names, number])
        if len(rows) == len(names):
            desired_at = dict(
                server.sql(
                    "SELECT c.name, extract(epoch FROM s.desired_at)::float FROM "
                    "mesh_cluster_status s JOIN mesh_clusters c ON c.id = s.cluster_id "
                    "WHERE c.name = ANY(%s)",
                    [names],
                )
            )
            return number, [float(r[0]) for r in rows], desired_at
        time.sleep(0.2)
    raise RuntimeError(f"revision {number}: only {len(rows)} of {len(names)} clusters ACKed")


def api_latencies(
    server: CanopyServer, token: str, cluster_token: str, count: int
) -> dict[str, list[float]]:
    """Ordinary requests one after another: a PromQL-API read and the web's health probe on
    gunicorn, and an agent's unheld config read on the agent server."""
    targets = {
        "GET /prometheus/api/v1/labels (web)": (server.url + "/prometheus/api/v1/labels", token),
        "GET /healthz (web)": (server.url + "/healthz", token),
        "GET /api/v1/agent/config (agent server)": (
            server.agent_url + "/api/v1/agent/config",
            cluster_token,
        ),
    }
    session = requests.Session()
    out: dict[str, list[float]] = {name: [] for name in targets}
    for _ in range(count):
        for name, (url, secret) in targets.items():
            started = time.perf_counter()
            answer = session.get(url, timeout=30, headers={"Authorization": f"Bearer {secret}"})
            out[name].append(time.perf_counter() - started)
            answer.raise_for_status()
    return out


async def with_simulated_agents(server, tokens: dict[str, str], names: list[str], work):
    """Run ``work()`` (blocking, in a thread) while ``names``' simulated agents long-poll."""
    agents = [SimulatedAgent(server.agent_url, tokens[name]) for name in names]
    tasks = [asyncio.ensure_future(a.run()) for a in agents]
    try:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(
            None,
            lambda: wait_for(
                lambda: waiting(server) >= len(names), 120, f"{len(names)} agents waiting"
            ),
        )
        for task in tasks:
            if task.done():
                task.result()  # raise what failed
        return await loop.run_in_executor(None, lambda: work(dict(zip(names, agents, strict=True))))
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await loop.run_in_executor(
            None, lambda: wait_for(lambda: waiting(server) == 0, 60, "agents gone")
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", default="1,100,1000")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--api-requests", type=int, default=200)
    args = parser.parse_args()
    counts = [int(n) for n in args.agents.split(",")]
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    with CanopyServer() as server:
        wait_for(lambda: _healthy(server.agent_url), 60, "the agent server")
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "tokens.json"
            server._manage(
                "shell",
                "-c",
                _SETUP,
                env={"BENCH_CLUSTERS": str(max(counts)), "BENCH_OUT": str(out)},
            )
            setup = json.loads(out.read_text())
        tokens, reader = setup["clusters"], setup["reader"]
        names = sorted(tokens)
        round_no = 0

        # Publish to ACK.
        rows = [["agents", "kind", "ACKs", "p50 ms", "p95 ms", "max ms"]]
        with tempfile.TemporaryDirectory() as tmp:
            log = open(Path(tmp) / "agent.log", "wb")  # noqa: SIM115
            real = subprocess.Popen(
                [str(AGENT_BIN), "--url", server.agent_url, "--token", tokens[names[0]],
                 "--dir", str(Path(tmp) / "mesh"), "--wait", str(WAIT)],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
            try:
                wait_for(lambda: waiting(server) == 1, 60, "the real agent waiting")
                latencies = []
                for _ in range(max(args.rounds, 5)):
                    round_no += 1
                    latencies += publish_round(server, names[:1], round_no)
                    wait_for(lambda: waiting(server) == 1, 60, "the real agent back")
                rows.append(_row(1, "canopy-agent (dir): ACK stored", latencies))
            finally:
                real.terminate()
                real.wait(30)
                log.close()
        wait_for(lambda: waiting(server) == 0, 60, "the real agent gone")

        for count in counts:
            chosen = names[:count]

            repeat = args.rounds if count > 1 else max(args.rounds, 5)

            def rounds(agents, chosen=chosen, repeat=repeat):
                nonlocal round_no
                acked, delivered = [], []
                for _ in range(repeat):
                    round_no += 1
                    number, latencies, desired_at = publish_round_detail(server, chosen, round_no)
                    acked += latencies
                    delivered += [
                        agents[name].received[number] - desired_at[name] for name in chosen
                    ]
                    wait_for(lambda: waiting(server) >= len(chosen), 120, "agents back")
                return acked, delivered

            acked, delivered = asyncio.run(with_simulated_agents(server, tokens, chosen, rounds))
            rows.append(_row(count, "simulated: bundle received", delivered))
            rows.append(_row(count, "simulated: ACK stored", acked))

        # Ordinary API requests: none waiting (the reference), then the most agents waiting.
        idle = api_latencies(server, reader, tokens[names[0]], args.api_requests)
        busy = asyncio.run(
            with_simulated_agents(
                server,
                tokens,
                names[: max(counts)],
                lambda _agents: api_latencies(server, reader, tokens[names[0]], args.api_requests),
            )
        )

    print("\nPublish to agent (from the rollout's desired_at), per cluster:")
    print_columns(rows, left=2)
    print(f"\nOrdinary API requests ({args.api_requests} each, one at a time):")
    api_rows = [["request", "agents waiting", "p50 ms", "p95 ms"]]
    for name in idle:
        for label, data in (("0", idle[name]), (str(max(counts)), busy[name])):
            api_rows.append(
                [name, label, _ms(statistics.median(data)), _ms(percentile(data, 0.95))]
            )
    print_columns(api_rows, left=1)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\n(machine: {os.cpu_count()} CPUs, load average at the end {load})")
    return 0


def _healthy(url: str) -> bool:
    try:
        return requests.get(url + "/healthz", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def _row(count: int, kind: str, latencies: list[float]) -> list[str]:
    return [
        str(count),
        kind,
        str(len(latencies)),
        _ms(statistics.median(latencies)),
        _ms(percentile(latencies, 0.95)),
        _ms(max(latencies)),
    ]


if __name__ == "__main__":
    sys.exit(main())
