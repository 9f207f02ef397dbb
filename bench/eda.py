"""Time to safe mode through Event-Driven Ansible: an Alertmanager post to the shipped rulebook, run by the
real ansible-rulebook, until the system is safe.

Starts a lab of its own with a snapshot of every shard (as the nightly safety net leaves it), installs the
collection from its built tarball into a temporary collections path (as a project sync does), and runs
extensions/eda/rulebooks/alertmanager.yml with ansible-rulebook and the lab's inventory. Then:

  shard alert     shard-2's index corrupted, then an Alertmanager webhook post (version 4) for it: the
                  seconds from the post to the shard's registry entry showing it out of service (the
                  retriever stops asking it), read every 0.05 s from outside; the recovery that follows
                  is awaited (its time is printed too) before the next alert;
  provider alert  once the recovery's playbook has ended (the stack's lock released: the rulebook runs one
                  playbook at a time, and the lock serialises the scenarios), the primary LLM provider
                  answering 503 (the generator failing), then a provider alert: the seconds from the post to
                  the generator's first good answer to a golden question (asked every 0.05 s).

The goal (issue 17): each within 5 s of the alert on a quiet machine. ansible-rulebook needs a Java 17
runtime (make java). Progress goes to stderr, the figures to stdout (--json for JSON).

    python bench/eda.py [--json] [--keep]
    make bench-eda
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import typing as t
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lab"))

from drill import running_lab  # noqa: E402  (bench/drill.py: a lab of its own, stopped at the end)

from ragops_lab import faults, stack  # noqa: E402
from ragops_lab.drills import provider_outage, shard_recovery  # noqa: E402
from ragops_lab.lab import Lab  # noqa: E402
from ragops_lab.runtime.kubeapi import KubeError  # noqa: E402
from ragops_lab.services import LabError  # noqa: E402

BIN = Path(sys.executable).parent
RULEBOOK = ROOT / "extensions" / "eda" / "rulebooks" / "alertmanager.yml"
TOKEN = "bench-eda-token"
GOAL_SECONDS = 5.0
POLL = 0.05
SHARD = "shard-2"
PROGRESS = sys.stderr
Obj = t.Dict[str, t.Any]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def install_collection(folder: Path) -> Path:
    """The collection built and installed into ``folder`` as ansible-galaxy does it; its collections path."""
    galaxy = str(BIN / "ansible-galaxy")
    subprocess.run([galaxy, "collection", "build", "--force", "--output-path", str(folder), str(ROOT)],
                   check=True, capture_output=True, text=True)
    tarball = next(folder.glob("ragops-recovery-*.tar.gz"))
    collections = folder / "collections"
    # --force: the checkout's own copy (make's ANSIBLE_COLLECTIONS_PATH) must not count as installed.
    subprocess.run([galaxy, "collection", "install", "--offline", "--no-deps", "--force", "-p", str(collections),
                    str(tarball)], check=True, capture_output=True, text=True,
                   env=dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(collections)))
    if not (collections / "ansible_collections" / "ragops" / "recovery" / "playbooks").is_dir():
        raise LabError(f"ansible-galaxy installed no ragops.recovery under {collections}")
    return collections


@contextlib.contextmanager
def rulebook(lab: Lab, collections: Path, workdir: Path, port: int) -> Iterator[Path]:
    """ansible-rulebook running the Alertmanager rulebook with the lab's inventory; its log."""
    variables = {"ragops_eda_host": "127.0.0.1", "ragops_eda_port": port, "ragops_eda_token": TOKEN}
    (workdir / "vars.yml").write_text(yaml.safe_dump(variables))
    log = workdir / "rulebook.log"
    env = dict(os.environ, PATH=f"{BIN}:{os.environ.get('PATH', '')}", ANSIBLE_COLLECTIONS_PATH=str(collections),
               ANSIBLE_LOCALHOST_WARNING="0", RAGOPS_REPORT_DIR=str(workdir / "reports"), ANSIBLE_NOCOLOR="1")
    with open(log, "w", encoding="utf-8") as out:
        process = subprocess.Popen([str(BIN / "ansible-rulebook"), "--rulebook", str(RULEBOOK), "-i",
                                    str(lab.paths.inventory), "--vars", str(workdir / "vars.yml")],
                                   stdout=out, stderr=subprocess.STDOUT, cwd=workdir, env=env, start_new_session=True)
    try:
        yield log
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


def alert(kind: str, alertname: str, fingerprint: str, **labels: str) -> Obj:
    """An Alertmanager webhook payload (version 4), one firing alert in its group."""
    common = {"alertname": alertname, "ragops_kind": kind, **labels}
    return {"version": "4", "groupKey": '{}:{alertname="%s"}' % alertname, "truncatedAlerts": 0,
            "status": "firing", "receiver": "ragops-eda", "groupLabels": {"alertname": alertname},
            "commonLabels": common, "commonAnnotations": {"summary": alertname}, "externalURL": "http://am",
            "alerts": [{"status": "firing", "labels": common, "annotations": {"summary": alertname},
                        "startsAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                        "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://prometheus/graph",
                        "fingerprint": fingerprint}]}


def listening(port: int, log: Path, timeout: float = 120.0) -> None:
    """Wait until the rulebook's webhook accepts connections (Java and Drools take a while to start)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.2)
    raise LabError(f"ansible-rulebook's webhook never listened on port {port}; see {log}")


def post(port: int, payload: Obj) -> float:
    """POST the alert as Alertmanager does; the moment it was accepted (epoch seconds)."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}/endpoint", data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"},
                                     method="POST")
    sent = time.time()
    with urllib.request.urlopen(request, timeout=10) as answer:
        if answer.status != 200:
            raise LabError(f"the rulebook's webhook answered HTTP {answer.status}")
    return sent


def until(what: str, check: Callable[[], bool], timeout: float, log: Path) -> float:
    """Poll ``check`` every POLL seconds; the moment it first held (epoch seconds)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(KubeError, OSError):
            if check():
                return time.time()
        time.sleep(POLL)
    raise LabError(f"{what}: not within {timeout:.0f} s; see {log}")


def lock_holder(lab: Lab) -> str:
    lease = lab.api().get(f"/apis/coordination.k8s.io/v1/namespaces/{stack.NAMESPACE}/leases/ragops-recovery-lock")
    return str(((lease or {}).get("spec") or {}).get("holderIdentity") or "")


def shard_alert(lab: Lab, port: int, log: Path) -> Obj:
    print("  " + faults.inject(lab, "corrupt-shard", [SHARD]).splitlines()[0], file=PROGRESS)
    api = lab.api()
    sent = post(port, alert("shard", "RagShardIndexErrors", "b3nc4e0a1f2d3c4b", shard=SHARD))
    safe = until(f"{SHARD} out of service", lambda: stack.registry_entry(api, SHARD).get("state") != "serving",
                 120, log)
    print(f"  alert -> {SHARD} out of service: {safe - sent:.2f} s", file=PROGRESS)
    serving = until(f"{SHARD} recovered", lambda: stack.registry_entry(api, SHARD).get("state") == "serving",
                    600, log)
    print(f"  alert -> {SHARD} serving again: {serving - sent:.2f} s", file=PROGRESS)
    # The recovery playbook goes on (re-index, postmortem) and holds the stack's lock until its end; the
    # rulebook runs one playbook at a time. The next alert is sent once it is over.
    until("the stack's lock released", lambda: not lock_holder(lab), 600, log)
    return {"to_safe_mode": round(safe - sent, 2), "to_recovered": round(serving - sent, 2),
            "safe_mode_seen": f"{SHARD} out of service in the registry"}


def provider_alert(lab: Lab, port: int, log: Path) -> Obj:
    print("  " + faults.inject(lab, "provider-outage", ["primary", "503"]).replace("\n", "; "), file=PROGRESS)
    question = provider_outage.golden_question()
    if provider_outage.ask_generator(lab, question).get("status") == 200:
        raise LabError("the generator still answers with the primary provider down")
    sent = post(port, alert("llm_provider", "RagLlmProviderErrors", "b3nc1a2b3c4d5e6f", provider="primary"))
    answers: t.List[Obj] = []

    def answered() -> bool:
        answers.append(provider_outage.ask_generator(lab, question, timeout=2.0))
        return answers[-1].get("status") == 200

    safe = until("a good answer from the generator", answered, 300, log)
    print(f"  alert -> first good answer: {safe - sent:.2f} s ({provider_outage.describe(answers[-1])})",
          file=PROGRESS)
    return {"to_safe_mode": round(safe - sent, 2), "safe_mode_seen": provider_outage.describe(answers[-1])}


def measure(workdir: Path) -> Obj:
    collections = install_collection(workdir / "install")
    port = free_port()
    with running_lab(workdir / "lab") as lab:
        print("  " + shard_recovery.snapshot_every_shard(lab, workdir / "snapshots.log"), file=PROGRESS)
        with rulebook(lab, collections, workdir, port) as log:
            listening(port, log)
            load_before = os.getloadavg()
            figures = {"shard_alert": shard_alert(lab, port, log)}
            figures["provider_alert"] = provider_alert(lab, port, log)
    return dict(figures, goal_seconds=GOAL_SECONDS, cpus=os.cpu_count(),
                load_average={"start": load_before, "end": os.getloadavg()})


def interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, lab state)")
    args = parser.parse_args()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, interrupt)
    workdir = Path(tempfile.mkdtemp(prefix="ragops-bench-eda-"))
    keep = True
    try:
        figures = measure(workdir)
        keep = args.keep
    except KeyboardInterrupt:
        print("interrupted; stopping what was started", file=PROGRESS)
        return 130
    except (LabError, KubeError, OSError, subprocess.SubprocessError) as exc:
        print(f"bench failed: {exc}", file=PROGRESS)
        return 1
    finally:
        if keep:
            print(f"logs kept in {workdir}", file=PROGRESS)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        print(json.dumps(figures, indent=1))
        return 0
    for name, label in (("shard_alert", "shard alert -> shard out of service"),
                        ("provider_alert", "provider alert -> generator answers again")):
        seconds = figures[name]["to_safe_mode"]
        verdict = "met" if seconds <= GOAL_SECONDS else "NOT MET"
        print(f"{label:<44} {seconds:6.2f} s  (goal <= {GOAL_SECONDS:.0f} s: {verdict})")
    print(f"recovery of {SHARD} after its alert: {figures['shard_alert']['to_recovered']:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
