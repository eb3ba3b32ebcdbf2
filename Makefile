# selfheal.aws: developer and CI entry points. `make help` lists them.
#
# Everything runs from .venv/ (built here from requirements.txt + constraints.txt with a
# Python >= 3.12 found by .ci/find-python). Nothing is installed outside the repository
# except ansible-test's own caches (~/.ansible/test) and its copy of the tree ($(AT_ROOT)).

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:
# the targets share .venv/, .ansible/ and the ansible-test copy: never run them side by side
.NOTPARALLEL:
MAKEFLAGS += --no-builtin-rules --no-builtin-variables

COLLECTION_NS   := selfheal
COLLECTION_NAME := aws

VENV       := $(CURDIR)/.venv
VENV_PY    := $(VENV)/bin/python
VENV_STAMP := $(VENV)/.installed
# PYTHON=/path/to/python3.12 picks the interpreter for the venv; empty = .ci/find-python
PYTHON ?=

export PATH := $(VENV)/bin:$(PATH)
export VIRTUAL_ENV := $(VENV)
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# ansible-lint would try to refresh its JSON schemas from the internet on every run
export ANSIBLE_LINT_SKIP_SCHEMA_UPDATE := 1

# The collection as ansible-playbook / ansible-lint / molecule see it, without installing:
# a symlink to the repository root (ansible.cfg puts this tree first in collections_path).
DEV_COLL_ROOT := $(CURDIR)/.ansible/dev-collections
DEV_COLL      := $(DEV_COLL_ROOT)/ansible_collections/$(COLLECTION_NS)/$(COLLECTION_NAME)

# ansible-test needs the tree at .../ansible_collections/<ns>/<name> as a real directory
# (it resolves symlinks with os.getcwd()), so `at-tree` copies the git-visible files there.
AT_ROOT ?= /tmp/selfheal-ansible-test
AT_COLL := $(AT_ROOT)/ansible_collections/$(COLLECTION_NS)/$(COLLECTION_NAME)
# Not collection content (galaxy.yml build_ignore): their own Python projects, held to
# ruff and their own tests rather than to the module rules of ansible-test sanity.
AT_EXCLUDE := sandbox benchmarks

SANITY_ARGS   ?=
PYTEST_ARGS   ?=
MOLECULE_ARGS ?=
SCENARIO      ?= default

.PHONY: help venv dev-collections demo down test checks lint ruff readmes integration ansible-lint changelog-lint \
        at-getpip at-tree sanity sanity-locked units sandbox-test molecule molecule-chaos build clean distclean \
        awx-collection ee-context

help:
	@echo 'selfheal.aws make targets:'
	@echo '  venv            build .venv/ (Python >= 3.12, requirements.txt + constraints.txt, sandbox/)'
	@echo '  demo            start the sandbox, deploy playbooks/site.yml, print playbooks/summary.yml,'
	@echo '                  run one game day (playbooks/chaos.yml, DEMO_SCENARIO=fail_health) into reports/'
	@echo '                  (TIME_SCALE=N: sandbox N times faster than AWS, default 10; SANDBOX_UP_ARGS="...")'
	@echo '  down            tear the stack down (playbooks/teardown.yml) and stop the sandbox'
	@echo '  test            checks (lint, units, sanity side by side), sandbox-test, integration, molecule, molecule-chaos, with timings'
	@echo '  checks          lint, units and sanity side by side (none of them times anything)'
	@echo '  lint            ruff check + ruff format --check, antsibull-changelog lint, ansible-lint'
	@echo '  sanity          ansible-test sanity on a copy of the tree in $(AT_ROOT)'
	@echo '  units           pytest tests/unit'
	@echo '  sandbox-test    pytest sandbox/tests'
	@echo '  molecule        molecule test -s $$SCENARIO (default: default)'
	@echo '  molecule-chaos  molecule test -s chaos: every game day vs its SLOs, every guard refusing'
	@echo '  changelog-lint  antsibull-changelog lint'
	@echo '  awx-collection  awx.awx (for playbooks/awx_configure.yml) into .ansible/awx-collection/'
	@echo '  build           ansible-galaxy collection build into dist/'
	@echo '  ee-context      ansible-builder create: the execution environment build context in dist/ee-context'
	@echo '  clean           remove caches and test output (keeps .venv/); distclean also removes .venv/'

# --- environment -------------------------------------------------------------------------

venv: $(VENV_STAMP)

# Rebuilt only when the inputs change. An existing venv whose interpreter still runs is
# updated in place; otherwise it is created anew.
$(VENV_STAMP): requirements.txt constraints.txt sandbox/pyproject.toml
	@python="$(PYTHON)"; python="$${python:-$$(.ci/find-python)}"; \
	if ! "$(VENV_PY)" -c '' >/dev/null 2>&1; then \
		echo "Creating $(VENV) with $$python ($$("$$python" --version))"; \
		rm -rf "$(VENV)"; \
		"$$python" -m venv "$(VENV)"; \
	fi
	$(VENV_PY) -m pip install --quiet --upgrade pip
	@# one resolver run for the tools and the sandbox (editable: `selfheal-sandbox` runs the checkout)
	$(VENV_PY) -m pip install --quiet --no-compile -r requirements.txt -c constraints.txt -e ./sandbox
	@# pip byte-compiles on one core, also the ~14,000 files of the collections the ansible
	@# package bundles: compile on every core, and of those only the ones used here (~40 s less).
	$(VENV_PY) -m compileall -qq -j0 -x '/ansible_collections/(?!amazon/aws/|community/aws/|ansible/utils/)' $(VENV)/lib \
		|| echo 'some files did not byte-compile: Python compiles them when they are imported'
	touch $@

dev-collections:
	@mkdir -p $(dir $(DEV_COLL))
	@[ "$$(readlink $(DEV_COLL))" = ../../../.. ] || ln -sfn ../../../.. $(DEV_COLL)

# awx.awx, for playbooks/awx_configure.yml only (not a dependency of the collection). The
# pinned ansible 14 no longer bundles it and Galaxy is out of reach; ansible 13.8.0, the last
# package that does (awx.awx 24.6.1, plain HTTP, no awxkit needed), is a wheel on PyPI:
# take that one collection out of it. ansible.cfg puts this tree on the collections path.
AWX_ANSIBLE_VERSION := 13.8.0
AWX_ANSIBLE_SHA256  := daf9c9a2850bbc6c098ba3368aeba99d4ae37c90bca47f974dc19342c0571361
AWX_COLL_ROOT := $(CURDIR)/.ansible/awx-collection
AWX_COLL      := $(AWX_COLL_ROOT)/ansible_collections/awx/awx

awx-collection: $(AWX_COLL)/MANIFEST.json

$(AWX_COLL)/MANIFEST.json: | $(VENV_STAMP)
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	echo 'ansible==$(AWX_ANSIBLE_VERSION) --hash=sha256:$(AWX_ANSIBLE_SHA256)' > "$$tmp/req.txt"; \
	$(VENV_PY) -m pip download --quiet --no-deps --only-binary=:all: --require-hashes \
		-r "$$tmp/req.txt" -d "$$tmp"; \
	$(VENV_PY) -c 'import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); \
		z.extractall(sys.argv[2], [n for n in z.namelist() if n.startswith("ansible_collections/awx/awx/")])' \
		"$$tmp"/ansible-$(AWX_ANSIBLE_VERSION)-py3-none-any.whl "$$tmp/out"; \
	rm -rf $(AWX_COLL_ROOT); mkdir -p $(dir $(AWX_COLL_ROOT)); mv "$$tmp/out" $(AWX_COLL_ROOT); \
	echo "awx.awx $$($(VENV_PY) -c 'import json, sys; print(json.load(open(sys.argv[1]))["collection_info"]["version"])' $@) in $(AWX_COLL_ROOT)"

# --- the product ------------------------------------------------------------------------

# TIME_SCALE=N runs a sandbox that `demo` starts N times faster than AWS (10 by default,
# so the demo and its game day take minutes; TIME_SCALE=1 for AWS speed). A sandbox that
# already runs keeps its own scale; its env file tells the playbooks which one.
# SANDBOX_UP_ARGS adds other `selfheal-sandbox up` options.
TIME_SCALE ?= 10
SANDBOX_UP_ARGS ?=
override SANDBOX_UP_ARGS += --time-scale $(TIME_SCALE)
# the scenario of the game day `demo` ends with (see playbooks/chaos.yml)
DEMO_SCENARIO ?= fail_health
SANDBOX_RUNNING := selfheal-sandbox status --json \
	| python -c 'import json, sys; sys.exit(not json.load(sys.stdin)["running"])'
# the running sandbox's endpoint, fake credentials and state dir, as `up` wrote them
SANDBOX_ENV := . "$${SELFHEAL_SANDBOX_STATE_DIR:-.sandbox}/env"

demo: $(VENV_STAMP) dev-collections
	selfheal-sandbox up $(SANDBOX_UP_ARGS)
	$(SANDBOX_ENV); ansible-playbook playbooks/site.yml
	@# the alert address gets a confirmation mail; confirm it as its reader would (the link)
	$(SANDBOX_ENV); selfheal-sandbox mailbox --confirm
	$(SANDBOX_ENV); ansible-playbook playbooks/summary.yml
	$(SANDBOX_ENV); ansible-playbook playbooks/chaos.yml -e chaos_scenario=$(DEMO_SCENARIO)
	@echo "Game day report: $$(ls -d reports/*-$(DEMO_SCENARIO)-* | tail -1)/report.md (and timeline.png)"

down: $(VENV_STAMP) dev-collections
	@if $(SANDBOX_RUNNING); then \
		$(SANDBOX_ENV); set -x; ansible-playbook playbooks/teardown.yml; \
	else \
		echo 'The sandbox is not running: nothing to tear down.'; \
	fi
	selfheal-sandbox down

# --- checks -----------------------------------------------------------------------------

TEST_STEPS := venv checks sandbox-test integration molecule molecule-chaos

# The static checks and the unit tests time nothing: they share the cores (the sandbox steps
# after them run one at a time). The shared prerequisites are built first, here; each check
# then runs in a make of its own (.NOTPARALLEL keeps one make serial), its output printed
# whole, in this order, once all have ended.
CHECKS := lint units sanity
checks: $(VENV_STAMP) dev-collections awx-collection
	@logs=$$(mktemp -d); trap 'rm -rf "$$logs"' EXIT; pids=(); \
	for check in $(CHECKS); do \
		$(MAKE) --no-print-directory $$check > "$$logs/$$check" 2>&1 & pids+=($$!); \
	done; \
	rc=0; i=0; for check in $(CHECKS); do \
		if wait $${pids[$$i]}; then result=passed; else result=FAILED; rc=1; fi; \
		echo "## make $$check $$result:"; cat "$$logs/$$check"; i=$$((i + 1)); \
	done; \
	exit $$rc

# Each step runs in its own make so that its time can be printed; the first failure stops.
test:
	@start=$$(date +%s); rc=0; \
	for step in $(TEST_STEPS); do \
		t0=$$(date +%s); \
		echo "### make $$step"; \
		$(MAKE) --no-print-directory $$step || { rc=$$?; echo "### make $$step FAILED after $$(( $$(date +%s) - t0 )) s"; break; }; \
		echo "### make $$step passed in $$(( $$(date +%s) - t0 )) s"; \
	done; \
	echo "### make test: $$([ $$rc = 0 ] && echo passed || echo FAILED) in $$(( $$(date +%s) - start )) s wall time"; \
	exit $$rc

lint: ruff readmes changelog-lint ansible-lint

# role READMEs carry a table generated from meta/argument_specs.yml: it must not drift
readmes: $(VENV_STAMP)
	python tests/utils/role_readmes.py --check

ruff: $(VENV_STAMP)
	ruff check .
	ruff format --check .

changelog-lint: $(VENV_STAMP)
	antsibull-changelog lint

ansible-lint: $(VENV_STAMP) dev-collections awx-collection
	ansible-lint

# pytest-ansible puts the collection on the import path: --ansible-unit-inject-only makes it
# use the dev-collections tree instead of building its own in ./collections/.
units: $(VENV_STAMP) dev-collections
	@if [ -z "$$(find tests/unit -name 'test_*.py' -o -name '*_test.py' 2>/dev/null)" ]; then \
		echo 'tests/unit has no test files yet: nothing to run.'; exit 0; \
	fi; \
	set -x; \
	ANSIBLE_COLLECTIONS_PATH=$(DEV_COLL_ROOT) pytest tests/unit --ansible-unit-inject-only $(PYTEST_ARGS)

# The sandbox is plain Python: keep pytest-ansible from building ./collections/ for it.
sandbox-test: $(VENV_STAMP)
	pytest sandbox/tests -p no:pytest-ansible $(PYTEST_ARGS)

# playbooks against a sandbox of their own: bad input is refused before anything exists
integration: $(VENV_STAMP) dev-collections awx-collection
	@# worksteal: the two long deploy-and-tear-down tests should not queue behind each other
	pytest tests/integration -p no:pytest-ansible -n 2 --dist worksteal $(PYTEST_ARGS)

molecule: $(VENV_STAMP) dev-collections
	ANSIBLE_COLLECTIONS_PATH=$(DEV_COLL_ROOT) molecule test -s $(SCENARIO) $(MOLECULE_ARGS)

# every game day against its SLOs and every chaos guard, 10 times faster than AWS
molecule-chaos: $(VENV_STAMP) dev-collections
	ANSIBLE_COLLECTIONS_PATH=$(DEV_COLL_ROOT) molecule test -s chaos $(MOLECULE_ARGS)

# ansible-test bootstraps pip in every venv it makes with a script it downloads from a host
# that is not reachable here; tests/utils/get_pip_offline.py does the same from ensurepip
# and PyPI. The file name carries the pip version ansible-test asks for.
at-getpip: $(VENV_STAMP)
	@pip_ver=$$($(VENV_PY) -c 'import types; from ansible_test._internal.python_requirements import get_venv_packages as g; print(g(types.SimpleNamespace(version="3"))["pip"])'); \
	dest="$(HOME)/.ansible/test/cache/get_pip_$${pip_ver//./_}.py"; \
	if ! cmp -s tests/utils/get_pip_offline.py "$$dest"; then \
		mkdir -p "$$(dirname "$$dest")"; cp tests/utils/get_pip_offline.py "$$dest"; echo "Installed $$dest"; \
	fi

at-tree: $(VENV_STAMP) at-getpip
	@# keep tests/output (ansible-test's delegation venv and results) across copies
	rm -rf $(AT_ROOT)/.keep-output
	if [ -d $(AT_COLL)/tests/output ]; then mv $(AT_COLL)/tests/output $(AT_ROOT)/.keep-output; fi
	rm -rf $(AT_COLL)
	mkdir -p $(AT_COLL)/tests
	if [ -d $(AT_ROOT)/.keep-output ]; then mv $(AT_ROOT)/.keep-output $(AT_COLL)/tests/output; fi
	@# tracked + untracked-but-not-ignored files, so uncommitted work is tested too
	git ls-files -co --exclude-standard -z -- . $(foreach d,$(AT_EXCLUDE),':!$(d)') \
		| while IFS= read -r -d '' f; do if [ -e "$$f" ]; then printf '%s\0' "$$f"; fi; done \
		| tar --null -T - -cf - | tar -xf - -C $(AT_COLL)
	@# dependencies: the amazon.aws / community.aws bundled with the ansible package
	@site=$$($(VENV_PY) -c 'import ansible_collections as a, os; print(next(p for p in a.__path__ if os.path.isdir(os.path.join(p, "amazon", "aws"))))'); \
	for dep in amazon/aws community/aws; do \
		mkdir -p $(AT_ROOT)/ansible_collections/$${dep%/*}; \
		ln -sfn "$$site/$$dep" $(AT_ROOT)/ansible_collections/$$dep; \
	done

# One copy per machine: a lock keeps two checkouts' runs from copying over each other.
sanity: $(VENV_STAMP)
	@mkdir -p $(AT_ROOT)
	flock $(AT_ROOT)/.lock $(MAKE) --no-print-directory sanity-locked

sanity-locked: at-tree
	@pyver=$$($(VENV_PY) -c 'import sys; print("%d.%d" % sys.version_info[:2])'); \
	set -x; cd $(AT_COLL) && ansible-test sanity --venv --python $$pyver $(SANITY_ARGS)

# dist/selfheal-aws-<version>.tar.gz, alone: execution-environment.yml copies dist/selfheal-aws-*.tar.gz
build: $(VENV_STAMP)
	rm -f dist/$(COLLECTION_NS)-$(COLLECTION_NAME)-*.tar.gz
	ansible-galaxy collection build --output-path dist --force

# The execution environment's build context in dist/ee-context (Containerfile + _build/).
# Building the image from it needs podman or docker: `ansible-builder build` instead.
ee-context: build
	ansible-builder create -f execution-environment.yml -c dist/ee-context --output-filename Containerfile

clean:
	rm -rf .ansible collections tests/output dist .pytest_cache .ruff_cache \
		changelogs/.plugin-cache.yaml $(AT_ROOT)
	find . -path ./.venv -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
