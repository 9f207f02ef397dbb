"""Command line: run the node agent until SIGTERM or SIGINT, then stop every pod it runs."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from ragops_lab.runtime.log import JsonLog

from .node import AgentConfig, NodeAgent


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m ragops_lab.agent",
                                     description="The lab's node agent: a kubelet, storage provisioner and "
                                                 "kube-proxy stand-in for one Node.")
    parser.add_argument("--api-url", required=True, help="the Kubernetes API, e.g. https://127.0.0.1:6443")
    parser.add_argument("--token-file", type=Path, required=True, help="file holding the agent's bearer token")
    parser.add_argument("--ca-file", type=Path, required=True, help="CA bundle that verifies the API server")
    parser.add_argument("--kubelet-cert", type=Path, required=True, help="serving certificate of the kubelet endpoint")
    parser.add_argument("--kubelet-key", type=Path, required=True)
    parser.add_argument("--client-ca", type=Path, required=True, help="CA of the API server's client certificate")
    parser.add_argument("--kubelet-version", required=True, help="reported as the Node's kubeletVersion")
    parser.add_argument("--state-dir", type=Path, required=True, help="volume directories and pod scratch space")
    parser.add_argument("--log-dir", type=Path, required=True, help="pod logs, served to `kubectl logs`")
    parser.add_argument("--node-name", default="lab-node")
    parser.add_argument("--kubelet-port", type=int, default=0, help="default: any free port")
    parser.add_argument("--pod-network", default="", help="first two octets of pod IPs, e.g. 127.42 (default random)")
    parser.add_argument("--interval", type=float, default=0.2, help="seconds between reconcile cycles")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stopping = threading.Event()

    def request_stop(_signum: int, _frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    config = AgentConfig(
        api_url=args.api_url, token=args.token_file.read_text().strip(), ca_file=args.ca_file.resolve(),
        state_dir=args.state_dir.resolve(), log_dir=args.log_dir.resolve(), kubelet_cert=args.kubelet_cert,
        kubelet_key=args.kubelet_key, client_ca=args.client_ca, kubelet_version=args.kubelet_version,
        node_name=args.node_name, pod_network=args.pod_network, interval=args.interval,
        kubelet_port=args.kubelet_port)
    NodeAgent(config, JsonLog("agent")).run(stopping)
    return 0


if __name__ == "__main__":
    sys.exit(main())
