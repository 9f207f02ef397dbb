"""The lab command line: python -m ragops_lab up|down|status|fault NAME [ARGS]|drill."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ragops_lab import faults
from ragops_lab.drills import bootstrap, provider_outage, restore_drill, shard_recovery
from ragops_lab.kube import build
from ragops_lab.lab import DEFAULT_STATE_DIR, Lab
from ragops_lab.runtime.kubeapi import KubeError
from ragops_lab.services import LabError


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m ragops_lab", description="The local RAG lab under recovery.")
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR, help="default: lab/state")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("up", help="start the lab (control plane, node agent, S3, the stack) and wait until it answers")
    commands.add_parser("down", help="stop everything the lab started")
    commands.add_parser("status", help="pods and endpoints")
    plane = commands.add_parser("controlplane", help="build the Kubernetes control plane binary, or regenerate "
                                                     "its Go module for another release")
    plane_commands = plane.add_subparsers(dest="action", required=True)
    plane_commands.add_parser("build", help="build it into the per-machine cache unless it is there; print its path")
    generate = plane_commands.add_parser("generate", help="write lab/controlplane/go.mod for a k8s.io/kubernetes "
                                                          "release (then build)")
    generate.add_argument("--release", required=True, help="e.g. 1.37.2")
    catalogue = "\n".join(f"  {f.name} {' '.join(f.args)}: {f.summary}" for f in faults.CATALOGUE)
    fault = commands.add_parser("fault", help="break the running lab the way the runbook describes",
                                epilog=f"faults:\n{catalogue}", formatter_class=argparse.RawDescriptionHelpFormatter)
    fault.add_argument("name", choices=[f.name for f in faults.CATALOGUE], metavar="NAME")
    fault.add_argument("args", nargs="*", metavar="ARG")
    drill_parser = commands.add_parser("drill", help="up, break the stack, recover it with the collection, down")
    drill_parser.add_argument("--scenario", choices=("a", "b", "c", "restore"), default="a",
                              help="a: a corrupt vectorstore shard (default); b: an LLM provider outage; "
                                   "c: a bootstrap deadlock; restore: the monthly restore drill")
    drill_parser.add_argument("--variant", choices=shard_recovery.VARIANTS,
                              help="scenario a: reopen (the shard recovers by a re-open, no restore) or failed-gate "
                                   "(every snapshot corrupt: the gate fails and the shard stays quarantined)")
    args = parser.parse_args(argv)
    if args.command == "drill" and args.variant and args.scenario != "a":
        parser.error(f"--variant {args.variant} is a variant of scenario a")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.command == "controlplane":
        return controlplane(args)
    lab = Lab(args.state_dir)
    try:
        if args.command == "up":
            timeline = lab.up()
            print(f"lab up in {timeline.elapsed:.1f}s\n  kubeconfig: {lab.paths.kubeconfig}\n"
                  f"  inventory:  {lab.paths.inventory}\n  s3:         {lab.paths.s3_env}")
        elif args.command == "down":
            lab.down()
        elif args.command == "status":
            return 0 if lab.status() else 1
        elif args.command == "fault":
            print(faults.inject(lab, args.name, args.args))
        elif args.command == "drill":
            if args.scenario == "b":
                return provider_outage.run(lab)
            if args.scenario == "restore":
                return restore_drill.run(lab)
            return bootstrap.run(lab) if args.scenario == "c" else shard_recovery.run(lab, variant=args.variant or "")
    except (LabError, KubeError) as exc:
        print(f"lab {args.command} failed: {exc}", file=sys.stderr)
        return 1
    return 0


def controlplane(args: argparse.Namespace) -> int:
    try:
        if args.action == "generate":
            print(build.generate_go_mod(build.Release.parse(args.release)))
        print(build.ensure_binary())
    except build.BuildError as exc:
        print(f"controlplane {args.action} failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
