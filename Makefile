# FlowLoom's two everyday commands: `make studio` and `make test`.
# Both create .venv when it is missing and reinstall the project only when pyproject.toml changed.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: studio test system-deps venv

## Serve the studio at http://127.0.0.1:8080 (FLOWLOOM_HOST / FLOWLOOM_PORT change that).
studio: $(INSTALLED)
	$(BIN)/flowloom studio

## Lint, format check, type check, then the test suite.
test: system-deps $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest -q

## Debian packages the tests need, installed with apt-get only when missing:
## PostgreSQL (its initdb and pg_ctl start a throwaway cluster for the database tests).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
system-deps:
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		echo "Installing PostgreSQL for the database tests (apt-get install postgresql)"; \
		$(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	fi

venv: $(INSTALLED)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(INSTALLED): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(INSTALLED)
