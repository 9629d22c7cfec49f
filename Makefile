# Two commands for a fresh machine: `make demo` and `make test` (see README.md).
# Both create .venv when it is missing and install what they need into it.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
# Stamps record what was installed, so repeated runs skip pip when pyproject.toml has not changed.
CORE_STAMP := $(VENV)/.installed-core
DEV_STAMP := $(VENV)/.installed-dev
PYTEST_WORKERS ?= 2

.PHONY: demo test lint typecheck unit browser bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(CORE_STAMP): pyproject.toml | $(BIN)/python
	$(PIP) install --quiet -e .
	touch $@

# The tests of deeplesion.data need torch: the pinned wheels lie on local disk (no multi-GB download).
$(DEV_STAMP): pyproject.toml constraints-torch.txt | $(BIN)/python
	$(PIP) install --quiet -c constraints-torch.txt -e ".[dev,torch]"
	touch $(CORE_STAMP) $(TORCH_STAMP) $@

# The demo's detector stage needs torch (the pinned local wheels, as for the tests), its viewer stage
# the view extra.
TORCH_STAMP := $(VENV)/.installed-torch
$(TORCH_STAMP): pyproject.toml constraints-torch.txt $(CORE_STAMP)
	$(PIP) install --quiet -c constraints-torch.txt -e ".[torch,view]"
	touch $@

# The outputs (synthetic release, NIfTI, COCO, report.html, plots, a detector run) stay in ./demo-out.
demo: $(TORCH_STAMP)
	$(BIN)/deeplesion demo --out demo-out

lint: $(DEV_STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: $(DEV_STAMP)
	$(BIN)/mypy

# The viewer's end-to-end test drives Debian's chromium (never a browser that playwright downloads):
# installed here when absent and running as root, as CI does; otherwise that one test is skipped.
browser:
	@if ! command -v chromium >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's chromium for the viewer's browser test"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	      || echo "could not install chromium: the viewer's browser test will be skipped"; \
	  else \
	    echo "chromium is absent and this is not root: the viewer's browser test will be skipped"; \
	  fi; \
	fi

unit: $(DEV_STAMP) browser
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile

test: lint typecheck unit

# On demand, not in CI (several minutes; most need ../shared/data): the numbers go to README.md.
bench: $(DEV_STAMP)
	for script in benchmarks/bench_*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
