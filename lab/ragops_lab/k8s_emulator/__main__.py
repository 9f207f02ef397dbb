"""Command line: run the emulator until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from .kubeconfig import write_private
from .server import EmulatorServer


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m ragops_lab.k8s_emulator",
                                     description="Local Kubernetes API emulator for the ragops lab.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--token", required=True, help="bearer token clients must present")
    parser.add_argument("--forbidden-token", help="a token that authenticates but is refused with 403")
    parser.add_argument("--log-dir", type=Path, help="serve pod logs from DIR/<ns>/<pod>/<container>[.previous].log")
    parser.add_argument("--url-file", type=Path, help="write the URL here once listening; removed on exit")
    parser.add_argument("--kubeconfig", type=Path, help="write a kubeconfig (context 'lab') here")
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    parser.add_argument("--no-tls", action="store_true",
                        help="plain HTTP only (kubectl will then not send the token)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    done = threading.Event()

    def request_stop(_signum: int, _frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    server = EmulatorServer(args.token, args.host, args.port, args.forbidden_token, args.log_dir,
                            args.verbose, tls=not args.no_tls).start()
    try:
        if args.kubeconfig:
            server.write_kubeconfig(args.kubeconfig)
        if args.url_file:
            write_private(args.url_file, server.url + "\n")
        print(server.url, flush=True)
        while not done.wait(3600):
            pass
    finally:
        server.stop()
        if args.url_file:
            args.url_file.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
