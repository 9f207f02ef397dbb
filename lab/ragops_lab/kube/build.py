"""Build the control plane binary from lab/controlplane (a Go module pinned to one k8s.io/kubernetes
release) once per machine, into a cache keyed by the module's files: a change to go.mod, go.sum or
main.go builds a new binary; anything else reuses the cached one.

`generate_go_mod` writes go.mod from the release's own go.mod as the Go module proxy serves it: every
staging module that release requires at v0.0.0 gets a `replace` to its published v0.N.x twin.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

LAB_DIR = Path(__file__).resolve().parents[2]
MODULE_DIR = LAB_DIR / "controlplane"
MODULE_FILES = ("go.mod", "go.sum", "main.go")
MODULE_PATH = "ragops-lab/controlplane"
KUBERNETES = "k8s.io/kubernetes"
# The names the binary answers to (argv[0]); each is a symlink to it in the cache folder.
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
_REQUIRE = re.compile(r"^\s*(?:require\s+)?k8s\.io/kubernetes\s+v(\d+)\.(\d+)\.(\d+)\s*$", re.M)
_GO_DIRECTIVE = re.compile(r"^(go|godebug|toolchain)\s+\S.*$", re.M)


class BuildError(RuntimeError):
    """The control plane could not be built; the message says what failed and what to do."""


@dataclass(frozen=True)
class Release:
    major: int
    minor: int
    patch: int

    @property
    def version(self) -> str:
        return f"v{self.major}.{self.minor}.{self.patch}"

    @property
    def staging_version(self) -> str:
        """The version staging modules (k8s.io/api, ...) are published at for this release."""
        return f"v0.{self.minor}.{self.patch}"

    @classmethod
    def parse(cls, text: str) -> Release:
        match = re.fullmatch(r"v?(\d+)\.(\d+)\.(\d+)", text.strip())
        if not match:
            raise BuildError(f"not a Kubernetes release: {text!r} (expected e.g. 1.37.2)")
        return cls(*(int(part) for part in match.groups()))


def pinned_release(go_mod: str) -> Release:
    match = _REQUIRE.search(go_mod)
    if not match:
        raise BuildError(f"{MODULE_DIR / 'go.mod'} requires no {KUBERNETES} release")
    return Release(*(int(part) for part in match.groups()))


def cache_root(env: Mapping[str, str] = os.environ) -> Path:
    """The project's cache on this machine: RAGOPS_LAB_CACHE, else ~/.cache/ragops-lab."""
    configured = env.get("RAGOPS_LAB_CACHE", "").strip()
    return Path(configured) if configured else Path.home() / ".cache" / "ragops-lab"


def go_env(cache: Path, env: Mapping[str, str] = os.environ) -> dict[str, str]:
    """Go's module and build caches inside the project's cache, static binaries, no VCS stamping."""
    return {**env, "GOMODCACHE": str(cache / "go" / "mod"), "GOCACHE": str(cache / "go" / "build"),
            "CGO_ENABLED": "0", "GOFLAGS": "-buildvcs=false", "GOTOOLCHAIN": env.get("GOTOOLCHAIN", "local")}


def module_key(module_dir: Path = MODULE_DIR) -> str:
    digest = hashlib.sha256()
    for name in MODULE_FILES:
        digest.update(name.encode() + b"\0" + (module_dir / name).read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def binary_dir(cache: Path, module_dir: Path = MODULE_DIR) -> Path:
    return cache / f"controlplane-{module_key(module_dir)}"


def version_ldflags(release: Release) -> str:
    """What upstream's build stamps, so that /version and `kubectl version` report the release."""
    stamps = {"gitVersion": release.version, "gitMajor": str(release.major), "gitMinor": str(release.minor),
              "gitTreeState": "clean"}
    flags = ["-s", "-w"]
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [f"-X {package}.{name}={value}" for name, value in stamps.items()]
    return " ".join(flags)


def go_binary() -> str:
    found = shutil.which("go")
    if not found:
        raise BuildError("the Go toolchain is missing: install Go 1.26 (`go version` must work) and run again")
    return found


@contextlib.contextmanager
def _build_lock(cache: Path) -> Iterator[None]:
    """One build at a time per cache: parallel test workers wait for the first one's binary."""
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / "build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def ensure_binary(cache: Path | None = None, module_dir: Path = MODULE_DIR, log: Path | None = None) -> Path:
    """The cached binary for the module as it is now, built first when there is none."""
    cache = cache or cache_root()
    target = binary_dir(cache, module_dir)
    binary = target / "kube"
    if binary.exists():
        return binary
    with _build_lock(cache):
        if not binary.exists():
            _build(cache, module_dir, target, log or cache / "build.log")
    return binary


def _build(cache: Path, module_dir: Path, target: Path, log: Path) -> None:
    release = pinned_release((module_dir / "go.mod").read_text())
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    command = [go_binary(), "build", "-trimpath", "-ldflags", version_ldflags(release), "-o",
               str(staging / "kube"), "."]
    started = time.monotonic()
    print(f"building the Kubernetes {release.version} control plane into {target} "
          f"(once per machine; a cold build takes many minutes, output in {log})", flush=True)
    with open(log, "ab") as output:
        done = subprocess.run(command, cwd=module_dir, env=go_env(cache), stdout=output, stderr=subprocess.STDOUT,
                              check=False)
    if done.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise BuildError(f"Failed to build the control plane (go build exited {done.returncode}); see {log}. "
                         "Check that the Go module proxy is reachable and that `go version` is 1.26 or newer.")
    for name in COMPONENTS:
        (staging / name).symlink_to("kube")
    (staging / "build.json").write_text(json.dumps({
        "release": release.version, "seconds": round(time.monotonic() - started, 1),
        "bytes": (staging / "kube").stat().st_size}) + "\n")
    os.replace(staging, target)
    print(f"built {target / 'kube'} in {time.monotonic() - started:.0f}s", flush=True)


# --- go.mod generation ---------------------------------------------------------------------------


def staging_modules(upstream_go_mod: str) -> list[str]:
    """The modules the release requires at v0.0.0: its staging repositories."""
    return sorted(set(re.findall(r"^\s*(?:require\s+)?(\S+)\s+v0\.0\.0\s*(?://.*)?$", upstream_go_mod, re.M)))


def go_mod_text(release: Release, upstream_go_mod: str) -> str:
    directives = "\n".join(m.group(0) for m in _GO_DIRECTIVE.finditer(upstream_go_mod)
                           if m.group(1) in ("go", "godebug"))
    replaces = "".join(f"\t{name} => {name} {release.staging_version}\n" for name in staging_modules(upstream_go_mod))
    if not replaces:
        raise BuildError(f"{KUBERNETES}@{release.version}'s go.mod lists no staging module at v0.0.0")
    return (f"// Generated by `python -m ragops_lab controlplane generate --release {release.version}` from\n"
            f"// {KUBERNETES}@{release.version}'s go.mod; `go mod tidy` then adds the indirect requirements.\n"
            f"module {MODULE_PATH}\n\n{directives}\n\nrequire {KUBERNETES} {release.version}\n\n"
            f"replace (\n{replaces})\n")


def upstream_go_mod(release: Release, cache: Path) -> str:
    """The release's go.mod, fetched through the Go module proxy into the module cache."""
    done = subprocess.run([go_binary(), "mod", "download", "-json", f"{KUBERNETES}@{release.version}"],
                          env=go_env(cache), capture_output=True, text=True, check=False)
    try:
        info = json.loads(done.stdout)
    except ValueError:
        info = {}
    if done.returncode != 0 or not info.get("GoMod"):
        raise BuildError(f"Failed to download {KUBERNETES}@{release.version}: {info.get('Error') or done.stderr}")
    return Path(info["GoMod"]).read_text()


def generate_go_mod(release: Release, cache: Path | None = None, module_dir: Path = MODULE_DIR) -> Path:
    """Write go.mod for `release` and let `go mod tidy` complete it and go.sum."""
    cache = cache or cache_root()
    go_mod = module_dir / "go.mod"
    go_mod.write_text(go_mod_text(release, upstream_go_mod(release, cache)))
    (module_dir / "go.sum").unlink(missing_ok=True)
    done = subprocess.run([go_binary(), "mod", "tidy"], cwd=module_dir, env=go_env(cache), capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        raise BuildError(f"go mod tidy failed for {release.version}: {done.stderr.strip()}")
    return go_mod
