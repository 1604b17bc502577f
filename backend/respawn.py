"""``python -m backend.respawn -- CMD...``: run CMD and start it again whenever it exits on its
own (a crash), until this process is told to stop (SIGTERM/SIGINT, passed on to CMD).

``make run`` (``backend/runner.py``) wraps the Celery worker, beat, the OTLP/gRPC receiver and
the agent API in it: honcho ends every process as soon as one exits, so without it one crash
took the whole stack down. The reliability suite found one: a Redis restart can end the Celery
worker with kombu's "Unrecoverable error" (its redis transport loses the connection's client
while restoring unacknowledged messages); the worker must come back by itself. Restarts back
off from 1 s to 30 s when CMD keeps dying at once. Compose restarts its services itself.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

MIN_BACKOFF_S = 1.0
MAX_BACKOFF_S = 30.0
HEALTHY_AFTER_S = 60.0  # a run this long resets the back-off


def main(argv: list[str]) -> int:
    if argv[:1] != ["--"] or len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    command = argv[1:]
    stopping = False
    child: subprocess.Popen | None = None

    def stop(signum, _frame):
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    backoff = MIN_BACKOFF_S
    while True:
        started = time.monotonic()
        child = subprocess.Popen(command)
        code = child.wait()
        if stopping:
            return max(code, 0)  # ended by the signal we passed on: a clean stop
        if time.monotonic() - started > HEALTHY_AFTER_S:
            backoff = MIN_BACKOFF_S
        print(
            f"respawn: {command[0]} exited with {code}; starting it again in {backoff:g} s",
            file=sys.stderr,
            flush=True,
        )
        deadline = time.monotonic() + backoff
        while not stopping and time.monotonic() < deadline:
            time.sleep(0.1)
        if stopping:
            return 0
        backoff = min(backoff * 2, MAX_BACKOFF_S)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
