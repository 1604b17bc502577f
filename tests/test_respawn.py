"""``backend.respawn``: a crashed process of ``make run`` is started again; a stop is passed on."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from tests.workers import ROOT, wait_until

CHILD = """
import pathlib, sys, time
log = pathlib.Path(sys.argv[1])
runs = log.read_text().count("start") if log.exists() else 0
log.write_text(log.read_text() + "start\\n" if log.exists() else "start\\n")
if runs == 0:
    sys.exit(3)  # the first run crashes
time.sleep(60)
"""


def test_a_crashed_process_is_started_again_and_a_stop_ends_it(tmp_path):
    log = tmp_path / "runs"
    wrapper = subprocess.Popen(
        [sys.executable, "-m", "backend.respawn", "--", sys.executable, "-c", CHILD, str(log)],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(
            lambda: log.exists() and log.read_text().count("start") == 2,
            30,
            "the crashed child was not started again",
        )
        time.sleep(0.3)  # the second run is sleeping, not crashing
        assert wrapper.poll() is None
        wrapper.send_signal(signal.SIGTERM)
        assert wrapper.wait(15) == 0
        assert "exited with 3; starting it again in 1 s" in wrapper.stderr.read()
        assert log.read_text().count("start") == 2
    finally:
        if wrapper.poll() is None:
            wrapper.kill()
            wrapper.wait()
