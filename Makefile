PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test test-quick lint bench bench-quick clean system-deps

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
	$(BIN)/pytest

test-quick: $(BIN)/.installed
	$(BIN)/ruff check prefect_parallelrun tests flows examples benchmarks
	$(BIN)/pytest -m "not slow" -q

bench: $(BIN)/.installed
	$(BIN)/pip install --quiet -e ".[bench]"
	$(BIN)/python -m benchmarks

bench-quick: $(BIN)/.installed
	$(BIN)/pip install --quiet -e ".[bench]"
	$(BIN)/python -m benchmarks --quick

clean:
	rm -rf $(VENV) .pytest_cache
