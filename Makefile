# FlowLoom's two everyday commands: `make studio` and `make test`.
# Both create .venv when it is missing and reinstall the project only when pyproject.toml changed.
# Both build the canvas bundle (assets/canvas, needs Node.js 20.19+ and npm) when its sources
# or its lock file changed, and the studio's Tailwind CSS when a file it scans changed.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

CANVAS := assets/canvas
CANVAS_BUNDLE := studio/components/canvas_bundle
CANVAS_BUILT := $(CANVAS_BUNDLE)/.built
CANVAS_MODULES := $(CANVAS)/node_modules/.installed
CANVAS_SOURCES := $(shell find $(CANVAS)/src -type f) $(CANVAS)/vite.config.js \
	$(CANVAS)/licenses.mjs $(CANVAS)/package.json
# The studio's prebuilt Tailwind CSS: its input, its build script and what it scans for classes
# (the studio's Python; the canvas's sources and NiceGUI's come with CANVAS_BUILT / INSTALLED).
CANVAS_STYLES := $(CANVAS_BUNDLE)/tailwind.css
STYLE_SOURCES := $(CANVAS)/tailwind.css $(CANVAS)/styles.mjs $(shell find studio -name '*.py')

.PHONY: studio test system-deps venv canvas

## Serve the studio at http://127.0.0.1:8080 (FLOWLOOM_HOST / FLOWLOOM_PORT change that).
# (compileall: cached bytecode starts FlowLoom faster, also where PYTHONDONTWRITEBYTECODE is set)
studio: $(INSTALLED) $(CANVAS_BUILT) $(CANVAS_STYLES)
	$(BIN)/python -m compileall -q engine nodes storage studio
	$(BIN)/flowloom studio

## Lint, format check, type check, then the test suite.
test: system-deps $(INSTALLED) $(CANVAS_BUILT) $(CANVAS_STYLES)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest -q

## Debian packages the tests need, installed with apt-get only when missing:
## PostgreSQL (its initdb and pg_ctl start a throwaway cluster for the database tests) and
## Chromium (the canvas's browser tests drive it through Playwright; no browser is downloaded).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
system-deps:
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		echo "Installing PostgreSQL for the database tests (apt-get install postgresql)"; \
		$(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	fi
	@if [ ! -x /usr/bin/chromium ]; then \
		echo "Installing Chromium for the canvas's browser tests (apt-get install chromium)"; \
		$(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	fi

## The canvas bundle (Vue Flow, built by Vite into studio/components/canvas_bundle) and the
## studio's Tailwind CSS beside it (Tailwind's CLI; it scans NiceGUI's sources in .venv).
canvas: $(CANVAS_BUILT) $(CANVAS_STYLES)

$(CANVAS_MODULES): $(CANVAS)/package-lock.json $(CANVAS)/package.json
	@command -v npm >/dev/null || { echo "The canvas needs Node.js 20.19+ and npm."; exit 1; }
	cd $(CANVAS) && npm ci --no-audit --no-fund
	touch $@

# `npm run build` builds the stylesheet too (Vite empties the folder first).
$(CANVAS_BUILT): $(CANVAS_MODULES) $(CANVAS_SOURCES) | $(INSTALLED)
	cd $(CANVAS) && npm run build
	touch $@

# Only the stylesheet, when only what Tailwind reads changed (no Vite build for a Python edit).
$(CANVAS_STYLES): $(CANVAS_MODULES) $(STYLE_SOURCES) $(INSTALLED) | $(CANVAS_BUILT)
	cd $(CANVAS) && npm run build:styles
	touch $@

venv: $(INSTALLED)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(INSTALLED): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(INSTALLED)
