# codex-box — `make demo` then `make test` on a fresh machine does all the set-up.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SUPERVISE := orchestrator/backends/containers/bin/codex-box-supervise
READY  := $(STAMP) $(SUPERVISE)

.DEFAULT_GOAL := help
.PHONY: help install demo images devcontainer-cli test fuzz test-unit test-faults test-nonroot test-escape lint bench bench-docker bench-podman bench-policy bench-audit bench-proxy clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@# Start-up time of every launch: no setuptools shim run by each interpreter (its
	@# .pth), and bytecode compiled now, so PYTHONDONTWRITEBYTECODE=1 starts fast too.
	$(BIN)/pip uninstall --quiet --yes setuptools
	$(BIN)/python -m compileall -q -j 0 $(VENV)/lib orchestrator
	touch $(STAMP)

# The helper every exec of a container session runs under (static: any image), rebuilt
# whenever its source changes. Without gcc and libc6-dev, all but container sessions works.
SUPERVISE_SRC := $(addprefix orchestrator/backends/containers/,supervise.c supervise_procs.c supervise_procs.h)
$(SUPERVISE): $(SUPERVISE_SRC)
	mkdir -p $(dir $@)
	gcc -static -O2 -Wall -Werror -o $@ $(filter %.c,$^) \
	  || echo "codex-box: container sessions need gcc and libc6-dev (apt-get install gcc libc6-dev)" >&2

install: $(READY) ## create ./.venv and install codex-box with the dev tools

demo: $(READY) ## run sandboxed commands on the native backend and show what was allowed and refused
	@CODEX_HOME=$${CODEX_HOME:-$(CURDIR)/.demo-home} sh scripts/demo.sh $(CURDIR)/$(BIN)/codex-box

images: $(READY) ## build codex-box/base and codex-box/test into every engine present (no registry)
	$(BIN)/python images/build.py

# The Dev Containers CLI the devcontainer tests run (`devcontainer up`), pinned, from npm
# into .tools/ (needs node >= 20 and npm); nothing to do, and no network, once installed.
DEVCONTAINER_CLI_VERSION := 0.89.0
DEVCONTAINER_DIR := .tools/devcontainers
DEVCONTAINER_STAMP := $(DEVCONTAINER_DIR)/.installed-$(DEVCONTAINER_CLI_VERSION)
$(DEVCONTAINER_STAMP):
	@command -v npm >/dev/null || { echo "codex-box: the Dev Containers CLI needs node and npm (apt-get install nodejs npm)" >&2; exit 1; }
	npm install --prefix $(DEVCONTAINER_DIR) --no-audit --no-fund --save-exact --loglevel=error @devcontainers/cli@$(DEVCONTAINER_CLI_VERSION)
	$(DEVCONTAINER_DIR)/node_modules/.bin/devcontainer --version
	rm -f $(DEVCONTAINER_DIR)/.installed-*
	touch $@

devcontainer-cli: $(DEVCONTAINER_STAMP) ## install the pinned Dev Containers CLI into .tools/devcontainers (the devcontainer tests run it)

# Tests that count an engine's round trips or expect a leftover only gc removes: another
# test's run (which sweeps what killed runs left) must not run beside them. Round trips
# first: test_engines kills runs on purpose, and their young records make runs sweep.
SERIAL := tests/integration/test_container_roundtrips.py tests/integration/test_engines.py

test: $(READY) ## the whole suite: unit, fuzz (bounded), integration (real kernel, engines), escape, then faults alone; in parallel where independent
	$(BIN)/pytest -q -rs -n 2 tests/unit
	@# Every parser against generated malformed input, a fixed number of examples each
	@# (about 2 min); `make fuzz` runs each for minutes.
	$(BIN)/pytest -q -rs -n 2 tests/fuzz
	$(BIN)/pytest -q -rs $(SERIAL)
	$(BIN)/pytest -q -rs -n 3 --dist loadfile tests/integration tests/escape $(addprefix --ignore=,$(SERIAL))
	@# Last and alone: these kill dockerd and the Podman service and fill disks on purpose.
	$(BIN)/pytest -q -rs tests/faults

fuzz: $(STAMP) ## fuzz every parser for FUZZ_SECONDS each (default 600; hypothesis in timed batches), then a table
	$(BIN)/python scripts/fuzz.py --seconds $(or $(FUZZ_SECONDS),600)

test-unit: $(READY) ## unit tests only (no kernel features needed)
	$(BIN)/pytest -q -rs -n 2 tests/unit

test-faults: $(READY) ## faults as a class: SIGKILL at each launch step, engines killed, full and read-only CODEX_HOME, clock jumps (root; kills the engines)
	$(BIN)/pytest -q -rs tests/faults

test-nonroot: ## (as root) the non-root leg: unit, native integration and escape suites as user codexci
	bash scripts/ci-nonroot.sh

test-escape: $(READY) ## the sandbox-escape suite, on every backend present
	$(BIN)/pytest -q -rs -n 3 --dist loadfile tests/escape

lint: $(STAMP) ## ruff + mypy --strict + import-linter (package rows) on orchestrator/, seccomp JSON, AppArmor compile check, action.yml against GitHub's schema
	$(BIN)/ruff check orchestrator tests bench
	$(BIN)/ruff format --check orchestrator
	$(BIN)/mypy --strict orchestrator
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m orchestrator.hardening.seccomp_lint
	$(BIN)/codex-box apparmor check
	$(BIN)/check-jsonschema --builtin-schema vendor.github-actions action.yml

bench: $(READY) ## launch overhead side by side (bubblewrap, Codex, srt), sessions' exec on every backend present, then `serve` (API runs, warm pools, claim latency, requests/s)
	$(BIN)/python bench/launch_overhead.py
	$(BIN)/python bench/session_overhead.py
	$(BIN)/python bench/serve_bench.py

bench-docker: $(READY) ## codex-box --backend docker vs raw docker run, alternating pairs
	$(BIN)/python bench/docker_overhead.py

bench-podman: $(READY) ## codex-box --backend podman vs the same hardened raw podman run, alternating pairs
	$(BIN)/python bench/podman_overhead.py

bench-policy: $(STAMP) ## execution policy: µs per command over the decision table, load ms
	$(BIN)/python bench/policy_eval.py

bench-audit: $(STAMP) ## audit log: append records/s (fsync; 1 and 8 writers) and verify time on 100k records
	$(BIN)/python bench/audit_bench.py

bench-proxy: $(STAMP) ## egress proxy: added p50 vs direct (1 client, 50 paced, 50 saturating) and req/s, 1 KiB GET on loopback; then the credential broker: injected vs inspected p50 over TLS
	$(BIN)/python bench/proxy_bench.py
	$(BIN)/python bench/broker_bench.py

clean: ## remove the venv and caches
	rm -rf $(VENV) .demo-home .pytest_cache .mypy_cache .ruff_cache
