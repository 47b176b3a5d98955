# Single entry point. `make demo` and `make test` work on a fresh machine: both build the
# virtualenv (.venv, Python 3.13 when available, as the Lambda runtime) on first use.
SHELL := /bin/bash
PYTHON313 := $(shell PYENV_VERSION=3.13.0 pyenv which python 2>/dev/null || command -v python3.13 || true)
PYTHON ?= $(if $(PYTHON313),$(PYTHON313),python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck cfn-lint unit bench build validate clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --upgrade "pip==25.3"
	$(BIN)/pip install --quiet --disable-pip-version-check -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/connect-guard replay events/

test: lint typecheck cfn-lint unit

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

cfn-lint: $(STAMP)
	$(BIN)/cfn-lint template.yaml member/template.yaml stacks/operations.yaml stacks/archive-query.yaml

# One worker per core (two on CI): the embedded AWS is per test, so tests share no state.
unit: $(STAMP)
	$(BIN)/pytest -n auto --dist loadscope

clean:
	rm -rf $(VENV) .aws-sam .pytest_cache .mypy_cache .ruff_cache

# ---- build: SAM CLI in its own virtualenv (its pins clash with the dev ones) -----------------
# `sam build` runs without Docker: it needs the runtime's python3.13 on PATH, which .venv/bin
# provides. Neither build nor validate needs AWS credentials; the region is only a default.
SAM_VENV := .tools/sam
SAM := $(SAM_VENV)/bin/sam
SAM_STAMP := $(SAM_VENV)/.installed
SAM_RUN := PATH="$(CURDIR)/$(BIN):$$PATH" AWS_DEFAULT_REGION="$${AWS_DEFAULT_REGION:-us-east-1}" \
	SAM_CLI_TELEMETRY=0 $(SAM)

.PHONY: sam

$(SAM_STAMP):
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet --disable-pip-version-check --upgrade "pip==25.3"
	$(SAM_VENV)/bin/pip install --quiet --disable-pip-version-check "aws-sam-cli==1.170.0"
	touch $(SAM_STAMP)

sam: $(SAM_STAMP)

# Ship compiled bytecode (the runtime can't write __pycache__ under /var/task or /opt, so it would
# recompile every cold start); unchecked-hash .pyc files don't depend on the zip's file times.
build: $(STAMP) $(SAM_STAMP)
	$(SAM_RUN) build
	$(BIN)/python -m compileall -q --invalidation-mode unchecked-hash .aws-sam/build

validate: $(STAMP) $(SAM_STAMP)
	$(SAM_RUN) validate --lint

# ---- bench: the performance budget (docs/performance.md); not part of CI ----------------------
# Cloud Custodian, the peer the cold init is compared with, in its own virtualenv (its pins are
# its own), pinned exactly: the bench packages its Lambda with c7n's own archive code.
CUSTODIAN_VENV := .tools/custodian
CUSTODIAN_STAMP := $(CUSTODIAN_VENV)/.installed
BENCH_ARGS ?=

.PHONY: custodian bench-quick

$(CUSTODIAN_STAMP):
	$(PYTHON) -m venv $(CUSTODIAN_VENV)
	$(CUSTODIAN_VENV)/bin/pip install --quiet --disable-pip-version-check --upgrade "pip==25.3"
	$(CUSTODIAN_VENV)/bin/pip install --quiet --disable-pip-version-check "c7n==0.9.53"
	touch $(CUSTODIAN_STAMP)

custodian: $(CUSTODIAN_STAMP)

bench: $(STAMP) $(CUSTODIAN_STAMP)
	$(BIN)/python -m connect_guard_tools.bench $(BENCH_ARGS)

bench-quick: $(STAMP) $(CUSTODIAN_STAMP)
	$(BIN)/python -m connect_guard_tools.bench --quick $(BENCH_ARGS)
