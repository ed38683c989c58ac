# inventory_scale — `make help` lists the targets. Stage targets pass ARGS through as Hydra
# overrides, e.g. `make train ARGS="data=m5 model.hidden_size=128"`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CLI := $(VENV)/bin/inventory-scale
TORCH_VERSION ?= 2.13.0
ARGS ?=
RAY_ADDRESS ?=

.PHONY: help setup demo test test-slow lint format bench bench-synth data validate train forecast \
        optimize backtest report pipeline sweep cluster-up cluster-down submit clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-13s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

setup: $(VENV)/.setup-done ## create .venv (torch 2.13.0 CPU wheel unless a torch imports, then -e .[dev]); quick when done

$(VENV)/.setup-done: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "torch==$(TORCH_VERSION)"
	$(PY) -m pip install -q -e ".[dev]"
	@touch $@

demo: setup ## generate a synthetic marketplace and run every built stage on it (local Ray)
	$(CLI) generate +experiment=demo $(ARGS)
	$(CLI) pipeline +experiment=demo $(ARGS)

test: setup ## the test suite (what .ci/run calls); slow and gpu tests excluded
	$(PY) -m pytest $(ARGS)

test-slow: setup ## only the slow tests (large data, long training)
	$(PY) -m pytest -m slow $(ARGS)

lint: setup ## ruff (lint + format check) and mypy on the package
	$(VENV)/bin/ruff check inventory_scale tests benchmarks
	$(VENV)/bin/ruff format --check inventory_scale tests benchmarks
	$(VENV)/bin/mypy

format: setup ## apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix inventory_scale tests benchmarks
	$(VENV)/bin/ruff format inventory_scale tests benchmarks

bench: setup ## benchmark against peer libraries (needs the bench extra)
	$(CLI) bench $(ARGS)

bench-synth: setup ## time and peak memory of generating 100,000 series x 730 days
	$(PY) benchmarks/bench_synth.py $(ARGS)

data: setup ## write a dataset: synthetic (default) or data=m5|walmart_weekly|store_item|carparts
	$(CLI) generate $(ARGS)

validate: setup ## check a dataset against the data contract
	$(CLI) validate $(ARGS)

train: setup ## train the LSTMs, one Ray task per shard
	$(CLI) train $(ARGS)

forecast: setup ## sample paths, quantiles, protection-interval demand
	$(CLI) forecast $(ARGS)

optimize: setup ## per-warehouse reorder plans
	$(CLI) optimize $(ARGS)

backtest: setup ## rolling-origin accuracy and policy A/B
	$(CLI) backtest $(ARGS)

report: setup ## HTML + Markdown run report
	$(CLI) report $(ARGS)

pipeline: setup ## validate -> train -> forecast -> optimize -> backtest -> report
	$(CLI) pipeline $(ARGS)

sweep: setup ## hyperparameter sweep on Ray Tune (ARGS="sweep=lstm_small sweep.num_samples=32")
	$(CLI) sweep $(ARGS)

cluster-up: setup ## start a local Ray head + workers on 127.0.0.1
	@echo "make cluster-up: not built yet (it lands with issue #5: distributed execution on Ray)" >&2; exit 3

cluster-down: setup ## stop the local Ray cluster
	@echo "make cluster-down: not built yet (it lands with issue #5: distributed execution on Ray)" >&2; exit 3

submit: setup ## ray job submit ARGS to RAY_ADDRESS
	@echo "make submit: not built yet (it lands with issue #5: distributed execution on Ray)" >&2; exit 3

clean: ## remove generated datasets, outputs and caches (keeps .venv)
	rm -rf datasets outputs .pytest_cache .mypy_cache .ruff_cache
	find . -name __pycache__ -type d -not -path './$(VENV)/*' -prune -exec rm -rf {} +
