# The two commands of the README: `make demo` and `make test`. Both set up everything.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 18,20

.PHONY: demo test lint setup prereqs bench clean

demo: setup
	$(BIN)/perfops demo

# Most tests wait on Terraform, moto, ssh or nix rather than compute (CPU is about a
# quarter busy in a serial run), so two workers; a module stays on one worker
# (--dist loadfile), as its fixtures (emulators, venvs, applied stacks) are per module.
test: setup lint
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --durations=25

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	shellcheck scripts/*.sh .ci/run $(wildcard nix/spawner/*.sh)

setup: prereqs $(VENV)/.installed node_modules/.installed
	$(BIN)/perfops doctor

prereqs:
	@PYTHON=$(PYTHON) scripts/prereqs.sh

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

bench: setup
	$(BIN)/python bench/synth.py
	$(BIN)/python bench/sync.py
	$(BIN)/python bench/ssh.py

clean:
	rm -rf cdktf.out .perfops .mypy_cache .ruff_cache .pytest_cache
