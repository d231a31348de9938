# Two commands matter: `make run` (the demo service on http://127.0.0.1:8080) and
# `make test` (lint + the whole suite). Both build .venv on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: run test lint fmt bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/rls-cds serve --demo --host 127.0.0.1 --port 8080

test: $(STAMP) lint
	$(BIN)/python -m pytest

# The long runs: ratios of the hot path, FHIR gathering, gunicorn throughput and memory;
# prints the table and writes BENCHMARKS.md (a few minutes).
bench: $(STAMP)
	$(BIN)/python -m benchmarks

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy cds_service

fmt: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) build dist var test-output .pytest_cache .ruff_cache
