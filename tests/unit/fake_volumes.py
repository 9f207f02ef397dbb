# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A shard on a StatefulSet with its claim and volume, on the in-memory API, and the controllers that
move it on each time the waiter sleeps: graceful pod deletion, PVC protection, the PV controller's
binding and reclaiming (a released volume whose policy is Delete is destroyed, and noted), dynamic
provisioning, the StatefulSet controller (pods, and claims from its template for a pending pod), the
scheduler and the kubelet, and the garbage collector for a deleted Job's pods.
"""

from __future__ import annotations

import copy
import itertools
import json
import typing as t

from ansible_collections.ragops.recovery.tests.unit.fakes import FakeTransport

NS = "rag"
CORE = "/api/v1/namespaces/%s" % NS
PVS = "/api/v1/persistentvolumes"
CLAIMS = CORE + "/persistentvolumeclaims"
PODS = CORE + "/pods"
JOBS = "/apis/batch/v1/namespaces/%s/jobs" % NS
STATEFULSETS = "/apis/apps/v1/namespaces/%s/statefulsets" % NS
SHARD_LABEL = "ragops.io/shard"
POD = "vectorstore-2"
CLAIM = "data-vectorstore-2"
Obj = t.Dict[str, t.Any]


class Crash(Exception):
    """The module process killed in the middle of a run."""


class VolumeCluster(FakeTransport):
    """``crash_after``: the number of writes after which the next write kills the run."""

    def __init__(self, *, set_creates_claims: bool = False) -> None:
        super().__init__()
        self.set_creates_claims = set_creates_claims
        self.uids = itertools.count(1)
        self.destroyed: t.List[str] = []
        self.crash_after: int | None = None
        self.write_count = 0
        self.add_statefulset()

    # --- the API ---------------------------------------------------------------------------

    def request(self, method: str, path: str, **options: t.Any) -> t.Any:
        if method != "GET":
            self.write_count += 1
            if self.crash_after is not None and self.write_count > self.crash_after:
                raise Crash("killed before %s %s" % (method, path))
        body = options.get("body")
        if method == "POST":
            body = copy.deepcopy(body)
            body["metadata"].setdefault("uid", self.uid())
            if body["kind"] in ("PersistentVolumeClaim", "Pod"):
                body.setdefault("status", {"phase": "Pending"})
            options["body"] = body
        return super().request(method, path, **options)

    def uid(self) -> str:
        return "uid-%d" % next(self.uids)

    def remove(self, path: str) -> None:
        obj = self.objects[path]
        if path.startswith(PODS + "/") or self._claim_in_use(path, obj):
            obj["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
            return
        del self.objects[path]

    def _claim_in_use(self, path: str, claim: Obj) -> bool:
        if not path.startswith(CLAIMS + "/"):
            return False
        return any(
            pod["spec"].get("nodeName") and claim["metadata"]["name"] in claims_of(pod)
            for pod in self.items(PODS)
        )

    def items(self, collection: str) -> t.List[Obj]:
        return [
            o
            for k, o in sorted(self.objects.items())
            if k.rsplit("/", 1)[0] == collection
        ]

    def get(self, collection: str, name: str) -> Obj | None:
        return self.objects.get(collection + "/" + name)

    # --- the shard as the StatefulSet controller made it -------------------------------------

    def add_statefulset(self) -> None:
        template = {
            "metadata": {"name": "data", "labels": {"app": "vectorstore"}},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": "local",
                "resources": {"requests": {"storage": "1Gi"}},
            },
        }
        self.add(
            STATEFULSETS,
            {
                "kind": "StatefulSet",
                "metadata": {"name": "vectorstore", "uid": "sts"},
                "spec": {"volumeClaimTemplates": [template]},
            },
        )
        self.make_claim(CLAIM, volume="pv-old", labels={"app": "vectorstore"})
        self.make_volume("pv-old", CLAIM, "1Gi", "Delete")
        self.make_pod(scheduled=True)

    def make_claim(
        self,
        name: str,
        *,
        volume: str = "",
        size: str = "1Gi",
        labels: Obj | None = None,
    ) -> Obj:
        claim = {
            "kind": "PersistentVolumeClaim",
            "metadata": {
                "name": name,
                "namespace": NS,
                "uid": self.uid(),
                "labels": labels or {},
            },
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": "local",
                "resources": {"requests": {"storage": size}},
            },
            "status": {"phase": "Pending"},
        }
        if volume:
            claim["spec"]["volumeName"] = volume
            claim["status"]["phase"] = "Bound"
        return self.add(CLAIMS, claim)

    def make_volume(self, name: str, claim: str, size: str, policy: str) -> Obj:
        found = self.get(CLAIMS, claim)
        return self.add(
            PVS,
            {
                "kind": "PersistentVolume",
                "metadata": {"name": name, "uid": self.uid()},
                "spec": {
                    "capacity": {"storage": size},
                    "accessModes": ["ReadWriteOnce"],
                    "storageClassName": "local",
                    "persistentVolumeReclaimPolicy": policy,
                    "claimRef": {
                        "namespace": NS,
                        "name": claim,
                        "uid": found["metadata"]["uid"] if found else "",
                    },
                },
                "status": {"phase": "Bound"},
            },
        )

    def make_pod(self, *, scheduled: bool) -> Obj:
        labels = {"app": "vectorstore", "apps.kubernetes.io/pod-index": "2"}
        pod: Obj = {
            "kind": "Pod",
            "metadata": {
                "name": POD,
                "namespace": NS,
                "uid": self.uid(),
                "labels": labels,
                "ownerReferences": [
                    {
                        "kind": "StatefulSet",
                        "name": "vectorstore",
                        "uid": "sts",
                        "controller": True,
                    }
                ],
            },
            "spec": {
                "containers": [{"name": "shard"}],
                "volumes": [
                    {"name": "data", "persistentVolumeClaim": {"claimName": CLAIM}}
                ],
            },
            "status": {"phase": "Pending"},
        }
        if scheduled:
            self.schedule(pod, ready=False)
        return self.add(PODS, pod)

    def schedule(self, pod: Obj, *, ready: bool) -> None:
        pod["spec"]["nodeName"] = "node-1"
        pod["metadata"]["labels"][SHARD_LABEL] = "shard-2"
        pod["status"] = {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        }

    def add_restore(self, size: str = "1Gi") -> None:
        """What a finished restore Job leaves: its claim bound to the restored volume, its pod."""
        self.make_claim(
            "data-vectorstore-2-r-s-1",
            volume="pv-restored",
            size=size,
            labels={SHARD_LABEL: "shard-2"},
        )
        self.make_volume("pv-restored", "data-vectorstore-2-r-s-1", size, "Delete")
        self.add(
            JOBS,
            {
                "kind": "Job",
                "metadata": {"name": "ragops-restore-shard-2-s-1", "uid": self.uid()},
                "status": {
                    "succeeded": 1,
                    "conditions": [{"type": "Complete", "status": "True"}],
                },
            },
        )
        job_pod = {
            "kind": "Pod",
            "metadata": {
                "name": "ragops-restore-shard-2-s-1-x",
                "uid": self.uid(),
                "labels": {
                    "job-name": "ragops-restore-shard-2-s-1",
                    SHARD_LABEL: "shard-2",
                },
            },
            "spec": {
                "nodeName": "node-1",
                "restartPolicy": "Never",
                "volumes": [
                    {
                        "name": "restore",
                        "persistentVolumeClaim": {
                            "claimName": "data-vectorstore-2-r-s-1"
                        },
                    }
                ],
            },
            "status": {"phase": "Succeeded"},
        }
        self.add(PODS, job_pod)

    # --- the controllers -------------------------------------------------------------------

    def tick(self, times: int = 1) -> None:
        for _tick in range(times):
            self._job_controller()
            self._kubelet_and_gc()
            self._pvc_protection()
            self._pv_controller()
            self._statefulset_controller()
            self._scheduler()

    def _job_controller(self) -> None:
        """A new restore Job runs once its claim is bound and succeeds, logging its result."""
        for job in self.items(JOBS):
            if job.get("status"):
                continue
            spec = job["spec"]["template"]["spec"]
            claim = self.get(CLAIMS, claims_of({"spec": spec})[0])
            if not claim or claim["status"].get("phase") != "Bound":
                continue
            name = job["metadata"]["name"] + "-x"
            labels = {"job-name": job["metadata"]["name"], SHARD_LABEL: "shard-2"}
            self.add(
                PODS,
                {
                    "kind": "Pod",
                    "metadata": {"name": name, "uid": self.uid(), "labels": labels},
                    "spec": dict(spec, nodeName="node-1"),
                    "status": {"phase": "Succeeded"},
                },
            )
            self.logs[PODS + "/" + name + "/log"] = json.dumps(
                {
                    "event": "result",
                    "restore": {"bytes": 10, "files": 2, "duration": 1.0},
                }
            )
            job["status"] = {
                "succeeded": 1,
                "conditions": [{"type": "Complete", "status": "True"}],
            }

    def _kubelet_and_gc(self) -> None:
        jobs = {o["metadata"]["name"] for o in self.items(JOBS)}
        for pod in self.items(PODS):
            job = pod["metadata"]["labels"].get("job-name")
            if pod["metadata"].get("deletionTimestamp") or (job and job not in jobs):
                del self.objects[PODS + "/" + pod["metadata"]["name"]]

    def _pvc_protection(self) -> None:
        for claim in self.items(CLAIMS):
            path = CLAIMS + "/" + claim["metadata"]["name"]
            if claim["metadata"].get("deletionTimestamp") and not self._claim_in_use(
                path, claim
            ):
                del self.objects[path]

    def _pv_controller(self) -> None:
        claims = {c["metadata"]["name"]: c for c in self.items(CLAIMS)}
        for volume in self.items(PVS):
            ref = volume["spec"].get("claimRef") or {}
            claim = claims.get(ref.get("name", ""))
            if ref.get("uid") and (
                claim is None or claim["metadata"]["uid"] != ref["uid"]
            ):
                if volume["spec"]["persistentVolumeReclaimPolicy"] == "Delete":
                    del self.objects[PVS + "/" + volume["metadata"]["name"]]
                    self.destroyed.append(volume["metadata"]["name"])
                else:
                    volume["status"]["phase"] = "Released"
        for claim in claims.values():
            if claim["status"].get("phase") != "Bound" and not claim["metadata"].get(
                "deletionTimestamp"
            ):
                self._bind(claim)

    def _bind(self, claim: Obj) -> None:
        name = claim["spec"].get("volumeName")
        candidates = [
            v
            for v in self.items(PVS)
            if (v["spec"].get("claimRef") or {}).get("name")
            == claim["metadata"]["name"]
            and not (v["spec"].get("claimRef") or {}).get("uid")
        ]
        volume = (
            self.get(PVS, name) if name else (candidates[0] if candidates else None)
        )
        if volume is None:
            volume = self.make_volume(
                "pv-provisioned-%s" % claim["metadata"]["uid"],
                claim["metadata"]["name"],
                claim["spec"]["resources"]["requests"]["storage"],
                "Delete",
            )
        ref = volume["spec"].get("claimRef") or {}
        if ref.get("name") != claim["metadata"]["name"] or ref.get("uid") not in (
            None,
            "",
            claim["metadata"]["uid"],
        ):
            return
        volume["spec"]["claimRef"]["uid"] = claim["metadata"]["uid"]
        volume["status"]["phase"] = "Bound"
        claim["spec"]["volumeName"] = volume["metadata"]["name"]
        claim["status"]["phase"] = "Bound"

    def _statefulset_controller(self) -> None:
        """Its missing claim first (with ``set_creates_claims``), then the pod; never while the claim
        is being deleted ("pvc is being deleted")."""
        pod, claim = self.get(PODS, POD), self.get(CLAIMS, CLAIM)
        if claim and claim["metadata"].get("deletionTimestamp"):
            return
        if (
            claim is None
            and self.set_creates_claims
            and (pod is None or pod["status"]["phase"] == "Pending")
        ):
            self.make_claim(CLAIM, labels={"app": "vectorstore"})
        if pod is None:
            self.make_pod(scheduled=False)

    def _scheduler(self) -> None:
        for pod in self.items(PODS):
            if pod["spec"].get("nodeName") or pod["metadata"].get("deletionTimestamp"):
                continue
            claims = [self.get(CLAIMS, name) for name in claims_of(pod)]
            if all(
                c
                and c["status"].get("phase") == "Bound"
                and not c["metadata"].get("deletionTimestamp")
                for c in claims
            ):
                self.schedule(pod, ready=True)


def claims_of(pod: Obj) -> t.List[str]:
    return [
        v["persistentVolumeClaim"]["claimName"]
        for v in pod["spec"].get("volumes") or []
        if "persistentVolumeClaim" in v
    ]
