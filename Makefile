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

demo: $(BIN)/.installed
	$(BIN)/python examples/image_scoring/run_image_scoring.py

test: $(BIN)/.installed
	$(BIN)/ruff check prefect_parallelrun tests flows examples benchmarks
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
