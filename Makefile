# Two commands matter: `make run` (the demo service on http://127.0.0.1:8080) and
# `make test` (lint + the whole suite). Both build .venv on first use, from the hash-pinned
# lock files in requirements/ (`make lock` refreshes them).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip --quiet --disable-pip-version-check
# `make run PORT=9000`; RLS_CDS_PORT and RLS_CDS_HOST are honoured as well.
PORT   ?= $(or $(RLS_CDS_PORT),8080)
HOST   ?= $(or $(RLS_CDS_HOST),127.0.0.1)
RUNTIME := $(VENV)/.runtime-stamp
DEV     := $(VENV)/.dev-stamp
SANDBOX := tests/fhir_sandbox
NPM_STAMP := $(SANDBOX)/node_modules/.package-lock.json
UV_COMPILE = $(BIN)/uv pip compile --quiet --universal --python-version 3.11 --generate-hashes

.PHONY: run sandbox test lint fmt bench docs lock prereqs image-check clean

# The runtime only: what `make run` needs (and the build backend, to install the package).
$(RUNTIME): requirements/build.txt requirements/runtime.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --require-hashes --no-deps -r requirements/build.txt -r requirements/runtime.txt
	$(PIP) install --no-deps --no-build-isolation -e .
	touch $@

# The test and development tools on top of the runtime.
$(DEV): $(RUNTIME) requirements/dev.txt
	$(PIP) install --require-hashes --no-deps -r requirements/build.txt -r requirements/dev.txt
	touch $@

run: $(RUNTIME)
	$(BIN)/rls-cds serve --demo --host $(HOST) --port $(PORT)

# The service and a FHIR server with the demo patients, both with CORS, for a browser client
# such as the CDS Hooks Sandbox (README: "Try it in the CDS Hooks sandbox"). AUTH=on checks
# JWTs, trusting the sandbox's published key (TRUSTED_CLIENTS=file: those clients instead).
FHIR_PORT ?= 8090
sandbox: $(DEV) $(NPM_STAMP)
	$(BIN)/python -m tests.sandbox_stack --port $(PORT) --fhir-port $(FHIR_PORT) \
		$(if $(ORIGINS),--origins $(ORIGINS)) $(if $(filter on,$(AUTH)),--auth) \
		$(if $(TRUSTED_CLIENTS),--trusted-clients $(TRUSTED_CLIENTS))

# What the suite needs beyond Python: checked (and installed where it can be) before pytest.
prereqs:
	@bash scripts/prereqs.sh

$(NPM_STAMP): $(SANDBOX)/package-lock.json | prereqs
	cd $(SANDBOX) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

test: $(DEV) prereqs $(NPM_STAMP) lint
	$(BIN)/python -m pytest

lint: $(DEV)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy cds_service

fmt: $(DEV)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The long runs: ratios of the hot path, FHIR gathering, gunicorn throughput and memory;
# prints the table and writes BENCHMARKS.md (a few minutes).
bench: $(DEV) $(NPM_STAMP)
	$(BIN)/python -m benchmarks

# The README's topic table, from the card contract in docs/card-topics.md.
docs: $(DEV)
	$(BIN)/python -m tests.contract --write

# Re-resolve the lock files to the newest versions pyproject.toml allows (then run make test).
lock: $(DEV)
	$(UV_COMPILE) requirements/build.in -o requirements/build.txt
	$(UV_COMPILE) pyproject.toml -c requirements/build.txt -o requirements/runtime.txt
	$(UV_COMPILE) pyproject.toml --extra test --extra dev -c requirements/build.txt \
		-c requirements/runtime.txt -o requirements/dev.txt

# Build the Dockerfile's image with podman on a local Debian base and run it (see README).
image-check: $(RUNTIME)
	bash deploy/image-check.sh

clean:
	rm -rf $(VENV) build dist var test-output .pytest_cache .ruff_cache $(SANDBOX)/node_modules
