"""Command line: run the node agent until SIGTERM or SIGINT, then stop every pod it runs."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from ragops_lab.runtime import JsonLog

from .node import AgentConfig, NodeAgent


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m ragops_lab.agent",
                                     description="The lab's node agent: kubelet and workload controllers.")
    parser.add_argument("--api-url", required=True, help="the Kubernetes API, e.g. http://127.0.0.1:6443")
    parser.add_argument("--token-file", type=Path, required=True, help="file holding the API's bearer token")
    parser.add_argument("--state-dir", type=Path, required=True, help="PVC directories and pod scratch space")
    parser.add_argument("--log-dir", type=Path, required=True, help="pod logs, as the emulator's --log-dir")
    parser.add_argument("--node-name", default="lab-node")
    parser.add_argument("--pod-network", default="", help="first two octets of pod IPs, e.g. 127.42 (default random)")
    parser.add_argument("--interval", type=float, default=0.2, help="seconds between reconcile cycles")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    token = args.token_file.read_text().strip()
    stopping = threading.Event()

    def request_stop(_signum: int, _frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    config = AgentConfig(args.api_url, token, args.state_dir.resolve(), args.log_dir.resolve(), args.node_name,
                         args.pod_network, args.interval)
    NodeAgent(config, JsonLog("agent")).run(stopping)
    return 0


if __name__ == "__main__":
    sys.exit(main())
