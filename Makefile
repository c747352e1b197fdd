PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Quiet Material for MkDocs' end-of-life banner, printed on every build.
MKDOCS := NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs

.PHONY: demo test test-fast test-quick lint bench bench-quick clean system-deps docs docs-serve

$(BIN)/.installed: pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

# The Debian packages behind the tests' real servers (listed in .ci/apt-packages.txt); needs root.
system-deps:
	packages="$$(grep -v '^#' .ci/apt-packages.txt | cut -d'#' -f1 | xargs)"; \
	if [ -n "$$packages" ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$packages; \
	fi

# Azurite (the Azure Storage emulator, from npm) into .ci/node/ for
# tests/test_storage_emulators.py. Node comes from `make system-deps`; Debian ships npm apart
# (other node builds bundle it), so it is installed here only where it is missing; needs root.
storage-emulators:
	command -v npm >/dev/null || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm)
	npm install --prefix .ci/node --no-audit --no-fund --silent azurite@3

demo: $(BIN)/.installed
	$(BIN)/python examples/image_scoring/run_image_scoring.py

test: $(BIN)/.installed
	$(BIN)/ruff check prefect_parallelrun tests flows examples benchmarks
	$(BIN)/mypy
	$(MKDOCS) build --strict --quiet
	$(BIN)/pytest

test-fast: test-quick

test-quick: $(BIN)/.installed
	$(BIN)/ruff check prefect_parallelrun tests flows examples benchmarks
	$(BIN)/pytest -m "not slow" -q

# The documentation site (mkdocs.yml, docs/) built into site/; --strict fails on a broken link.
docs: $(BIN)/.installed
	$(MKDOCS) build --strict

docs-serve: $(BIN)/.installed
	$(MKDOCS) serve

# Every benchmark; the ones against the alternatives write their tables and plots into
# docs/benchmarks.md and docs/img/. Run on an idle machine.
bench: $(BIN)/.installed
	$(BIN)/pip install --quiet -e ".[bench]"
	$(BIN)/python -m benchmarks --write-docs

bench-quick: $(BIN)/.installed
	$(BIN)/pip install --quiet -e ".[bench]"
	$(BIN)/python -m benchmarks --quick --write-docs

clean:
	rm -rf $(VENV) .pytest_cache site
