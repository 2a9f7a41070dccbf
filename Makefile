# The two commands of the quickstart: `make demo` and `make test`. Everything a fresh clone
# needs is installed here, into .venv; torch 2.13.0 (CPU) first, so that nothing pulls a CUDA build.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
UT := $(VENV)/bin/unitrack
STAMP := $(VENV)/.installed
TORCH_VERSION := 2.13.0

.PHONY: install demo lint test bench docs clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip setuptools wheel
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet "torch==$(TORCH_VERSION)"
	$(PY) -m pip install --quiet -e ".[all,dev]"
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(PY) examples/train_digits.py --config configs/digits.yaml --epochs 3 --lr 0.05
	$(PY) examples/train_digits.py --config configs/digits.yaml --epochs 3 --lr 0.2
	$(UT) ls
	$(UT) compare latest~1 latest
	$(UT) explain latest~1 latest
	@echo
	@echo "See these runs in the dashboard: $(UT) ui   (it prints its URL and opens the browser; Ctrl-C stops it)"

# ruff (style, imports, likely bugs) over the package, its benchmarks and tests, and mypy (types,
# with the pydantic plugin) over the package, configured in pyproject.toml; `make test` runs it first
lint: install
	$(VENV)/bin/ruff check unitrack bench tests
	$(VENV)/bin/mypy unitrack

test: lint
	$(PY) -m pytest -q --durations=15

bench: install
	$(PY) -m bench.log_overhead --write-doc
	$(PY) -m bench.integrations_overhead --write-doc
	$(PY) -m bench.workflow_speed --write-doc
	$(PY) -m bench.backend_overhead --write-doc
	$(PY) -m bench.weight_delta --write-doc
	$(PY) -m bench.checkpoint_io --write-doc
	$(PY) -m bench.ui_speed --write-doc
	$(PY) -m bench.read_path --write-doc
	$(PY) -m bench.optuna_overhead --write-doc
	$(PY) -m bench.activations_overhead --write-doc
	$(PY) -m bench.rank_channel --write-doc
	$(PY) -m bench.team_stack --write-doc

docs: install
	$(PY) -m unitrack.config_reference --write docs/configuration.md

clean:
	rm -rf $(VENV) .pytest_cache
