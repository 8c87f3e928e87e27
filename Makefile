# `make demo` and `make test` work on a fresh clone: each creates .venv and installs what it needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: audit demo test test-deep test-faults test-unit lint bench bench-quick dashboards dashboards-check clean mutation

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/pynomaly demo

# Two test processes for the main suite (it mostly waits on the broker), then the fault
# suite on its own: its throughput figures must not share the CPU with other tests.
# Branch coverage of streams/, detectors/ and sinks/ (test processes only, not the worker
# subprocesses) is combined over both runs and reported at the end.
# Tests marked deep (the deep PyOD models) run when the deep extra (torch) is installed;
# otherwise pytest deselects them and prints "deep extra not installed: N deep-model tests
# not run (make test-deep installs it)" (tests/conftest.py).
test: $(STAMP) lint
	$(BIN)/pytest -n 2 -m "not faults" --cov --cov-report=
	$(BIN)/pytest -m faults tests/faults --cov --cov-append --cov-report=term

# Mutation testing of the core modules (docs/testing.md): CPU heavy, not part of `make test`.
# MUTATE="streams.alerting.silences*" limits it to one module's mutants.
MUTATE ?=
mutation: $(STAMP)
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[mutation]'
	flock /tmp/heavy.lock nice -n 15 $(BIN)/mutmut run $(MUTATE)
	$(BIN)/mutmut results

# The deep PyOD models (pyod.autoencoder, pyod.vae, pyod.deepsvdd): installs the deep extra
# into .venv (torch 2.13.0, the CPU build; ~15 s), then runs the tests marked deep (~2 min,
# most of it the worker test on the broker). Not part of `test`: see docs/detectors.md.
test-deep: $(STAMP)
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev,deep]'
	$(BIN)/pytest -n 2 -m deep

# The fault and abuse suite (kill -9, broker stall, sink outage, fuzz, key explosion): ~3 min
# at CI sizes; PYNOMALY_FAULTS_FULL=1 for the full sizes.
test-faults: $(STAMP)
	$(BIN)/pytest -m faults tests/faults -s

test-unit: $(STAMP)
	$(BIN)/pytest -m "not integration and not faults"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy streams detectors sinks

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run --json bench.json

# Dependency vulnerability audit (needs a route to PyPI's JSON API or OSV).
audit: $(STAMP)
	bash .ci/audit

bench-quick: $(STAMP)
	$(BIN)/python -m benchmarks.run --quick

dashboards: $(STAMP)
	$(BIN)/python -m dashboards.render

dashboards-check: $(STAMP)
	$(BIN)/python -m dashboards.render --check

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .pynomaly-data .coverage mutants
