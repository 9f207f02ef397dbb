# ragops.recovery — development entry points.
#   make test    every check: lint, sanity, unit, lab and end-to-end tests
#   make drill   a recovery drill against the local lab
# Both create .venv (Python 3.11) and install what they need.

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
COLLECTION_LINK := build/collections/ansible_collections/ragops/recovery
SANITY_ROOT := build/sanity/ansible_collections/ragops/recovery
GET_PIP_CACHE := $(HOME)/.ansible/test/cache/get_pip_24_2.py
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/build/collections
export PATH := $(CURDIR)/$(BIN):$(PATH)
VERSION := $(shell sed -n 's/^version: *//p' galaxy.yml)

.PHONY: test lint ruff mypy ansible-lint sanity units pytest tools drill lab-up lab-down lab-fault clean bench-snapshots \
	collection ee-context ee

test: lint sanity units pytest

$(STAMP): requirements.txt requirements-test.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt -r requirements-test.txt
	touch $(STAMP)

$(COLLECTION_LINK): | $(STAMP)
	mkdir -p $(dir $(COLLECTION_LINK))
	ln -sfn $(CURDIR) $(COLLECTION_LINK)

venv: $(STAMP) $(COLLECTION_LINK)

lint: ruff mypy ansible-lint

# The collection's code (plugins/, tests/unit/) is kept in ruff format's layout at 88 columns.
ruff: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check plugins tests/unit

mypy: venv
	cd build/collections && $(CURDIR)/$(BIN)/mypy --config-file $(CURDIR)/pyproject.toml -p ansible_collections.ragops.recovery.plugins

ansible-lint: venv
	$(BIN)/ansible-lint --offline

# ansible-test needs the collection under a real ansible_collections/ path (it
# does not follow symlinks), so it runs on the collection as built.
sanity-tree: venv
	rm -rf build/sanity build/ragops-recovery-*.tar.gz
	$(BIN)/ansible-galaxy collection build --force --output-path build/ >/dev/null
	mkdir -p $(SANITY_ROOT)
	tar -xzf build/ragops-recovery-*.tar.gz -C $(SANITY_ROOT)
	printf '/tests/output/\n/.gitignore\n' > $(SANITY_ROOT)/.gitignore
	cd $(SANITY_ROOT) && git init --quiet && git add --all
	mkdir -p $(dir $(GET_PIP_CACHE))
	test -f $(GET_PIP_CACHE) || cp .ci/get_pip_offline.py $(GET_PIP_CACHE)

sanity: sanity-tree
	cd $(SANITY_ROOT) && $(CURDIR)/$(BIN)/ansible-test sanity --venv --python 3.11 --color no

# The reference tools the tests compare the snapshot format with: zstd (GNU tar and sha256sum come with
# Debian), from Debian's packages when missing; and nft, with which the network tests drop and reset
# packets between a playbook and S3.
tools:
	@command -v zstd >/dev/null || (apt-get update -qq && apt-get install -y -qq zstd) \
	  || { echo "zstd is missing and could not be installed: install Debian's zstd package" >&2; exit 1; }
	@command -v nft >/dev/null || (apt-get update -qq && apt-get install -y -qq nftables) \
	  || echo "nft is missing (Debian's nftables): the network fault tests will be skipped" >&2

units: sanity-tree tools
	cd $(SANITY_ROOT) && $(CURDIR)/$(BIN)/ansible-test units --local --python 3.11 --color no

# The collection tarball to publish or install (build/dist/). Galaxy requires a link to the
# repository: the URL of this checkout's origin, or REPOSITORY=<URL> (.ci/build_collection.py).
REPOSITORY ?=
collection: venv
	rm -rf build/dist
	$(BIN)/python .ci/build_collection.py --output-path build/dist $(if $(REPOSITORY),--repository $(REPOSITORY))

# The execution environment (execution-environment.yml, docs/execution-environment.md): its build
# context in build/ee/context, and the image built from it with podman (CONTAINER_RUNTIME=docker
# for Docker). The tag is the image name the collection's restore Jobs default to.
EE_IMAGE ?= localhost/ragops-recovery-ee:$(VERSION)
CONTAINER_RUNTIME ?= podman
ee-context: collection
	rm -rf build/ee && mkdir -p build/ee
	cp build/dist/ragops-recovery-$(VERSION).tar.gz build/ee/ragops-recovery.tar.gz
	$(BIN)/ansible-builder create -f execution-environment.yml --context build/ee/context --output-filename Containerfile

ee: ee-context
	$(CONTAINER_RUNTIME) build -f build/ee/context/Containerfile -t $(EE_IMAGE) build/ee/context

# The Kubernetes control plane of the lab, built from lab/controlplane into ~/.cache/ragops-lab (or
# RAGOPS_LAB_CACHE) once per machine: many minutes cold, nothing when it is there.
.PHONY: controlplane
controlplane: venv
	PYTHONPATH=$(CURDIR)/lab $(BIN)/python -m ragops_lab controlplane build

# ansible-rulebook (the EDA tests) needs a Java 17 runtime: Debian's package.
.PHONY: java
java:
	command -v java >/dev/null || (apt-get update -qq && apt-get install -y -qq openjdk-17-jre-headless)

# Each end-to-end module runs its tests in order against one lab of its own: keep a file on one worker.
pytest: venv controlplane tools java
	$(BIN)/python -m pytest -n 2 --dist loadfile --durations=30 tests/lab tests/e2e

# The local lab (lab/README.md): state, kubeconfig and inventory under lab/state/.
lab-up: venv controlplane
	PYTHONPATH=$(CURDIR)/lab $(BIN)/python -m ragops_lab up

lab-down: venv
	PYTHONPATH=$(CURDIR)/lab $(BIN)/python -m ragops_lab down

lab-fault: venv
	@test -n "$(FAULT)" || { echo 'usage: make lab-fault FAULT="corrupt-shard shard-2"'; exit 2; }
	PYTHONPATH=$(CURDIR)/lab $(BIN)/python -m ragops_lab fault $(FAULT)

# SCENARIO=a (default): a corrupt shard; SCENARIO=b: an LLM provider outage; SCENARIO=c: a bootstrap
# deadlock; SCENARIO=restore: the monthly restore drill (the per-shard RTO/RPO table). VARIANT picks
# another path of the scenario where it has one (lab/README.md).
SCENARIO ?= a
VARIANT ?=
drill: venv controlplane
	PYTHONPATH=$(CURDIR)/lab $(BIN)/python -m ragops_lab drill --scenario $(SCENARIO) $(if $(VARIANT),--variant $(VARIANT))

# Snapshot create/restore against tar|zstd|s5cmd on >= 1 GiB of index-like data (bench/snapshots.py).
bench-snapshots: venv tools
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r bench/requirements.txt
	$(BIN)/python bench/snapshots.py $(BENCH_ARGS)

# A 50-query golden-query validation against the lab retriever: wall time relative to the slowest single
# query and to the same queries one by one (bench/golden_validate.py).
.PHONY: bench-golden
bench-golden: venv controlplane
	$(BIN)/python bench/golden_validate.py $(BENCH_ARGS)

# Each module's start-up (its AnsiballZ payload run as Ansible runs it, stopped at the argument check)
# against ansible.builtin.stat's in the same run (bench/module_startup.py).
.PHONY: bench-startup
bench-startup: venv
	$(BIN)/python bench/module_startup.py $(BENCH_ARGS)

# A scenario's playbook run against the lab, its wall time split into waiting on the system and
# Ansible's own overhead (bench/drill.py; SCENARIO=a or b).
.PHONY: bench-drill
bench-drill: venv controlplane
	$(BIN)/python bench/drill.py --scenario $(SCENARIO) $(BENCH_ARGS)

# Time to safe mode through the shipped Alertmanager rulebook, run by ansible-rulebook against the lab
# (bench/eda.py).
.PHONY: bench-eda
bench-eda: venv controlplane java
	$(BIN)/python bench/eda.py $(BENCH_ARGS)

# Every benchmark (the drills last, the slowest) and one table of their ratios against the goals, with
# the load average of each (bench/all.py; figures also in build/bench/results.json). BENCH_LOCK=<file>
# runs the ones that start a lab or SeaweedFS under flock, one heavy job at a time on a shared machine.
BENCH_LOCK ?=
.PHONY: bench
bench: venv controlplane tools java
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r bench/requirements.txt
	$(BIN)/python bench/all.py $(if $(BENCH_LOCK),--lock $(BENCH_LOCK)) $(BENCH_ARGS)

clean:
	rm -rf build .pytest_cache .mypy_cache .ruff_cache
