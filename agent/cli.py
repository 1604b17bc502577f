"""``canopy-agent --url URL --token T (--dir DIR | --kubectl [--context C]) [--once]``."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path

from agent import __version__
from agent.appliers import DirectoryApplier, KubectlApplier, state_dir_default
from agent.client import CanopyClient
from agent.watch import Agent

MAX_WAIT = 300


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="canopy-agent",
        description="Apply the mesh configuration Canopy rolls out to this cluster, and report "
        "back (ACK/NACK).",
    )
    p.add_argument("--url", required=True, help="Canopy's agent endpoint, e.g. http://canopy:8001")
    p.add_argument(
        "--token",
        default=os.environ.get("CANOPY_AGENT_TOKEN"),
        help="the cluster's agent token (or CANOPY_AGENT_TOKEN)",
    )
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--dir", type=Path, help="write each revision into this directory")
    target.add_argument("--kubectl", action="store_true", help="apply with kubectl")
    p.add_argument("--context", help="kubectl context (with --kubectl)")
    p.add_argument("--state-dir", type=Path, help="where --kubectl keeps the last applied files")
    p.add_argument("--once", action="store_true", help="apply the desired revision once, exit")
    p.add_argument("--wait", type=int, default=30, help="long-poll seconds (1-300, default 30)")
    p.add_argument(
        "--retry-failed-after",
        type=float,
        default=60.0,
        help="seconds before a NACKed revision is tried again (default 60)",
    )
    p.add_argument("--version", action="version", version=f"canopy-agent {__version__}")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if not args.token:
        parser().error("--token (or CANOPY_AGENT_TOKEN) is required")
    if not 1 <= args.wait <= MAX_WAIT:
        parser().error(f"--wait must be between 1 and {MAX_WAIT}")
    if args.context and not args.kubectl:
        parser().error("--context needs --kubectl")
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s canopy-agent %(message)s",
        stream=sys.stderr,
    )
    try:
        client = CanopyClient(args.url, args.token)
    except ValueError as exc:
        parser().error(str(exc))
    if args.dir is not None:
        applier = DirectoryApplier(args.dir)
    else:
        applier = KubectlApplier(
            state_dir=args.state_dir or state_dir_default(args.url), context=args.context
        )
    agent = Agent(
        client=client,
        applier=applier,
        wait=args.wait,
        retry_failed_after=args.retry_failed_after,
        once=args.once,
    )

    def stop(signum, frame):
        agent.stopping = True
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        return agent.run()
    except KeyboardInterrupt:
        logging.getLogger("canopy-agent").info("event=stopped")
        return 0


if __name__ == "__main__":
    sys.exit(main())
