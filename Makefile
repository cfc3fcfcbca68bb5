# Two entry points for a fresh machine: `make demo` and `make test` (each sets up .venv first); CI also runs `make lint`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SHARED_DATA ?= ../shared/data

.PHONY: setup demo test test-fast lint package docs notebooks benchmarks clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test,search,export,hub,track,docs]"
	touch $@

demo: setup
	$(VENV)/bin/caekit demo

# MNIST is rebuilt exactly from the shared script when it is there (7 s); tests that need it skip otherwise.
data/MNIST/raw/train-images-idx3-ubyte:
	@if [ -f $(SHARED_DATA)/get_mnist.py ]; then $(PY) $(SHARED_DATA)/get_mnist.py data || echo "MNIST could not be made: MNIST tests will skip"; else echo "no $(SHARED_DATA): MNIST tests will skip"; fi

test: setup data/MNIST/raw/train-images-idx3-ubyte
	$(PY) -m pytest

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks scripts
	$(VENV)/bin/ruff format --check src tests benchmarks scripts
	$(VENV)/bin/mypy

# the wheel and sdist a release would upload, checked as PyPI would check them
package: setup
	rm -rf dist
	$(PY) -m build --outdir dist .
	$(VENV)/bin/twine check --strict dist/*

# the documentation site (docs/, mkdocs.yml): API reference from the docstrings, CLI reference from the commands
docs: setup
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet -d build/site

# the tutorials in notebooks/, each run top to bottom on a fresh kernel in a temporary folder (about a minute each on
# one thread; MNIST is made as for the tests); one without its data (../shared/data, MNIST in data/) is skipped, saying so
notebooks: setup data/MNIST/raw/train-images-idx3-ubyte
	$(PY) scripts/run_notebooks.py

test-fast: setup
	$(PY) -m pytest -m "not slow"

clean:
	rm -rf runs .pytest_cache
