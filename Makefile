# failback.airflow - developer entry points.
#   make site   set up what is missing, then install the local inventory's Airflow fleet
#   make test   set up what is missing, then run every check CI runs
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON        ?= python3
VENV          := .venv
VENV_AIRFLOW  := .venv-airflow
VENV_SANITY   := .venv-sanity
BIN           := $(CURDIR)/$(VENV)/bin
AIRFLOW_BIN   := $(CURDIR)/$(VENV_AIRFLOW)/bin
COLLECTION    := .collections/ansible_collections/failback/airflow
SANITY_ROOT   := .build/sanity/ansible_collections/failback/airflow
INVENTORY     ?= inventories/local/hosts.yml
# The local fleet's DAG bundle (inventories/local/group_vars/airflow_installations.yml).
LOCAL_DAG_REPO := /opt/failback-airflow/git/dags.git
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
# apt-get for a missing system package, one at a time (make test runs its checks two at a time, and
# tests/setup-host.sh takes the same lock).
APT_LOCK      := /tmp/failback-apt.lock
APT_INSTALL   := flock $(APT_LOCK) sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$$@" >/dev/null' apt-install
export PATH := $(BIN):$(PATH)

MOLECULE_SCENARIOS ?= podman,docker+drills kubernetes
# make test, after what everything needs is in place: two lanes side by side (tests/molecule.sh).
# The drills mostly wait for their DAGs' scheduled intervals (wall-clock time), so they start first,
# alone in their lane; the other runs the checks (lint, sanity, unit, real-Airflow), the integration
# tests and the Podman and Docker scenarios one after the other.
TEST_LANES ?= make:checks,make:integration-tests,podman,docker+drills kubernetes

.PHONY: help venv-support setup host-setup java site test checks lint sanity unit test-airflow integration integration-tests molecule bench changelog clean

help:
	@echo "make site   - set up, then run playbooks/site.yml on $(INVENTORY)"
	@echo "make test   - set up, then every check: lint, sanity, unit, real-Airflow, integration, Molecule and the drills"
	@echo "make bench  - guard overhead and map move benchmarks"

# A fresh Debian/Ubuntu has python3 without venv: install python3-venv first (as root). Every
# virtualenv waits for this (they are made two at a time in make test).
venv-support:
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || { \
		echo "[setup] $(PYTHON) cannot create virtualenvs: installing python3-venv"; \
		$(APT_INSTALL) python3-venv; }

$(VENV)/.stamp: requirements.txt requirements-test.txt | venv-support
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -qq --upgrade pip
	$(BIN)/pip install -qq -r requirements.txt -r requirements-test.txt
	touch $@

$(VENV_AIRFLOW)/.stamp: tests/airflow/requirements.txt tests/airflow/constraints.txt | venv-support
	$(PYTHON) -m venv $(VENV_AIRFLOW)
	$(AIRFLOW_BIN)/pip install -qq --upgrade pip
	$(AIRFLOW_BIN)/pip install -qq -r tests/airflow/requirements.txt -c tests/airflow/constraints.txt
	touch $@

# ansible-test sanity runs in its own virtualenv (it installs its pinned linters there).
$(VENV_SANITY)/.stamp: requirements.txt | venv-support
	$(PYTHON) -m venv $(VENV_SANITY)
	$(VENV_SANITY)/bin/pip install -qq "$$(grep '^ansible-core' requirements.txt)"
	touch $@

$(COLLECTION):
	mkdir -p $(dir $(COLLECTION))
	ln -sfn ../../.. $(COLLECTION)

setup: $(VENV)/.stamp $(COLLECTION)

# One progress line per stage; the installations print where they answer at the end.
site: setup
	@start=$$SECONDS; echo "[make site] 1/3 host packages: Podman and its network DNS through the airflow_server role, debootstrap"; \
		bash tests/setup-host.sh --engine podman --no-images --site; \
		echo "[make site] 2/3 local images (tests/images/build.sh; about 3 minutes the first time) and the DAG repository"; \
		bash tests/images/build.sh; \
		bash tests/dag-repo.sh create $(LOCAL_DAG_REPO) tests/dags/failback_hello.py; \
		echo "[make site] 3/3 installations of $(INVENTORY) (playbooks/site.yml; about 2 minutes the first time)"; \
		stage=$$SECONDS; $(BIN)/ansible-playbook -i $(INVENTORY) playbooks/site.yml; \
		echo "[make site] installations ready in $$((SECONDS - stage)) s; done in $$((SECONDS - start)) s"

# What every lane needs, two at a time (pip is single-threaded; each target's output is printed whole
# when it ends), then the lanes. A failing check fails make test once both lanes have ended.
test:
	$(MAKE) --no-print-directory -j2 --output-sync=target setup $(VENV_AIRFLOW)/.stamp $(VENV_SANITY)/.stamp host-setup java
	bash tests/molecule.sh $(TEST_LANES)

# The checks without containers, one after the other (a lane of make test).
checks: lint sanity unit test-airflow

lint: setup
	$(BIN)/yamllint --strict .
	$(BIN)/ansible-lint --profile production
	$(BIN)/antsibull-changelog lint
	$(BIN)/python docs/role_reference.py --check

# ansible-test needs the collection under an ansible_collections/NAMESPACE/NAME path. It
# bootstraps pip in its test virtualenvs with a script from ci-files.testing.ansible.com; where
# that host is unreachable, tests/sanity/get_pip.py stands in for it (ensurepip + pip install).
ANSIBLE_TEST_PIP := 24.2
sanity: setup $(VENV_SANITY)/.stamp
	command -v shellcheck >/dev/null || $(APT_INSTALL) shellcheck
	mkdir -p $(HOME)/.ansible/test/cache
	test -e $(HOME)/.ansible/test/cache/get_pip_$(subst .,_,$(ANSIBLE_TEST_PIP)).py || \
		cp tests/sanity/get_pip.py $(HOME)/.ansible/test/cache/get_pip_$(subst .,_,$(ANSIBLE_TEST_PIP)).py
	rm -rf .build/sanity
	mkdir -p $(SANITY_ROOT)
	git ls-files -z --cached --others --exclude-standard | xargs -0 -I{} cp --parents {} $(SANITY_ROOT)/
	cd $(SANITY_ROOT) && git init -q && git add -A && \
		$(CURDIR)/$(VENV_SANITY)/bin/ansible-test sanity --local --requirements --python 3.11 --color no

# A failing assert shows 2400 characters of its message, not 240: enough of a playbook run's repr
# (failback_ansible.PlaybookRun) for CI's log to say which task failed and why.
PYTEST = -m pytest -q -n 2 -o verbosity_assertions=1

unit: setup
	$(BIN)/python $(PYTEST) tests/unit

# The Git DAG bundle tests serve a repository with git daemon (Debian's git).
test-airflow: setup $(VENV_AIRFLOW)/.stamp
	command -v git >/dev/null || $(APT_INSTALL) git
	$(AIRFLOW_BIN)/python $(PYTEST) --durations=10 tests/airflow

integration: setup host-setup java $(VENV_AIRFLOW)/.stamp
	$(MAKE) --no-print-directory integration-tests

# The integration tests alone, for a lane of `make test` (which has set up everything they need).
integration-tests:
	$(BIN)/python $(PYTEST) --durations=10 tests/integration

# ansible-rulebook (the automatic failover's test) runs its rules on Debian's OpenJDK 17.
java:
	command -v java >/dev/null || $(APT_INSTALL) openjdk-17-jre-headless

# System packages (podman, docker.io, debootstrap...) and locally built test images.
host-setup: setup
	bash tests/setup-host.sh

# Collection-level Molecule scenarios in extensions/molecule, run by tests/molecule.sh: one step
# after the other; `a+b` runs two scenarios at the same time (the drills mostly wait for
# scheduled intervals, so they run beside the Podman scenario, which shares no port, directory,
# project or unit with them). The kubernetes scenario needs a real cluster: without KUBECONFIG it
# is reported as skipped, never as passed.
molecule: setup host-setup
	bash tests/molecule.sh $(MOLECULE_SCENARIOS)

bench: setup
	$(BIN)/python benchmarks/guard_bench.py

changelog: setup
	$(BIN)/antsibull-changelog release

clean:
	rm -rf .build .collections tests/output
