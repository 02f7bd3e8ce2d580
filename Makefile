# tagmatrix: see README.md. Every target works on a fresh machine of this kind.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install lab lab-cluster lab-cluster-down demo test test-cluster unit lint bench \
	bench-startup bench-history faults \
	libraries lock-deps clean

## install: .venv with tagmatrix (editable) and the dev tools
install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev]'
	touch $@

## lab: engine, registry, swarm, package index mirror and stand-in python images (idempotent; see lab/up)
lab:
	lab/up

## lab-cluster: two Docker-in-Docker worker nodes join the lab's Swarm (after make lab; idempotent; see lab/cluster-up)
lab-cluster:
	lab/cluster-up

## lab-cluster-down: remove the worker nodes; the single-node lab stays (see lab/cluster-down)
lab-cluster-down:
	lab/cluster-down

## demo: the bundled example across the lab's interpreters (exits 1 by design)
demo: install lab
	@$(BIN)/tagmatrix run -f examples/sample/matrix.yaml --reports reports; code=$$?; \
	if [ $$code -eq 1 ]; then \
	  echo "demo: exit 1, as designed: pixelsniff uses imghdr, which Python 3.13 removed"; \
	fi; exit $$code

## test: the whole suite (unit + integration on the real engine), but the lab cluster's
##   tests (make test-cluster)
test: install lab
	$(BIN)/pytest -q --ignore=$(CLUSTER_TESTS)

CLUSTER_TESTS := tests/integration/test_cluster.py
## test-cluster: the Swarm tests on the multi-node lab cluster: brings it up (lab/cluster-up),
##   runs test_cluster.py and test_swarm.py there, and takes it down again unless it was
##   up before
test-cluster: install lab
	@was_up=$$(docker ps -q --filter label=org.tagmatrix.lab=node | wc -l); code=0; \
	started=$$SECONDS; \
	lab/cluster-up && $(BIN)/pytest -q $(CLUSTER_TESTS) tests/integration/test_swarm.py \
	  || code=$$?; \
	if [ "$$was_up" = 0 ]; then lab/cluster-down || code=1; \
	else echo "test-cluster: the cluster was up before, so it stays up"; fi; \
	echo "test-cluster: exit $$code in $$((SECONDS - started)) s"; exit $$code

## unit: only the tests that need no Docker
unit: install
	$(BIN)/pytest -q tests/unit

## lint: ruff and mypy --strict
lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

## bench: benchmarks (figures, not tests); writes reports/bench.json
##   ONLY=short,act,startup runs some cases (cases: benchmarks/bench.py --help);
##   BENCH_ARGS passes more options, e.g. BENCH_ARGS="--rounds 7 --prefix mine"
bench: install lab
	$(BIN)/python benchmarks/bench.py $(if $(ONLY),--only $(ONLY)) $(BENCH_ARGS)

## libraries: real libraries' suites (pluggy, attrs, structlog, packaging) through tagmatrix
##   and by hand in the same images: equal per-test counts; writes reports/libraries.json
libraries: install lab
	$(BIN)/python benchmarks/libraries.py $(if $(ONLY),--only $(ONLY))

## bench-startup: only the start-up case (no Docker, no lab)
bench-startup: install
	$(BIN)/python benchmarks/bench.py --only startup $(BENCH_ARGS)

## bench-history: only the run history at its retention limit (no Docker, no lab; 2-4 minutes)
bench-history: install
	$(BIN)/python benchmarks/bench.py --only history $(BENCH_ARGS)

## faults: fault scenarios in a row (results lost, leftovers, cleanup time)
faults: install lab
	$(BIN)/python benchmarks/faults.py --disruptive

## lock-deps: requirements.lock, tagmatrix's runtime dependencies with their hashes
lock-deps: install
	$(BIN)/pip-compile --quiet --generate-hashes --strip-extras --allow-unsafe \
	  --no-emit-index-url --no-emit-find-links --output-file requirements.lock pyproject.toml

## clean: the venv, caches and report output (not the lab cache: lab/.cache)
clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
	find reports -mindepth 1 ! -name .gitkeep -exec rm -rf {} + 2>/dev/null || true
