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
RAY_STATE ?= .ray
WORKERS ?= 2
CPUS_PER_WORKER ?= 1
HEAD_CPUS ?= 0
# Runtime env of submitted jobs: nodes run the installed package; credentials come from the
# nodes' environment (AWS_*), never from here (the runtime env is visible in the dashboard).
RUNTIME_ENV ?= {"env_vars": {"PYTHONUNBUFFERED": "1"}}

.PHONY: help setup demo test test-slow test-gpu lint format bench bench-synth data validate train forecast \
        optimize backtest report pipeline sweep cluster-up cluster-down submit bench-scale \
        bench-allocate bench-ensemble bench-policy bench-text clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-13s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

setup: $(VENV)/.setup-done ## create .venv (torch 2.13.0 CPU wheel unless a torch imports, then -e .[dev,bench,text]); quick when done

$(VENV)/.setup-done: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "torch==$(TORCH_VERSION)"
	$(PY) -m pip install -q -e ".[dev,bench,text]"
	@touch $@

demo: setup ## generate a synthetic marketplace and run every built stage on it (local Ray)
	$(CLI) generate +experiment=demo $(ARGS)
	$(CLI) pipeline +experiment=demo $(ARGS)

test: setup ## the test suite (what .ci/run calls); slow and gpu tests excluded
	$(PY) -m pytest $(ARGS)

test-slow: setup ## only the slow tests (large data, long training)
	$(PY) -m pytest -m slow $(ARGS)

test-gpu: setup ## only the GPU tests (Lightning on CUDA inside Ray tasks); skipped without a GPU
	$(PY) -m pytest -m gpu $(ARGS)

lint: setup ## ruff (lint + format check) and mypy on the package
	$(VENV)/bin/ruff check inventory_scale tests benchmarks
	$(VENV)/bin/ruff format --check inventory_scale tests benchmarks
	$(VENV)/bin/mypy

format: setup ## apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix inventory_scale tests benchmarks
	$(VENV)/bin/ruff format inventory_scale tests benchmarks

bench: setup ## ours vs neuralforecast, statsforecast, LightGBM: ARGS="bench=tiny|quick|full" (default quick)
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

cluster-up: setup ## start a local Ray head + WORKERS (default 2) worker nodes on 127.0.0.1
	$(PY) -m inventory_scale.distributed.cluster up --state $(RAY_STATE) --workers $(WORKERS) \
		--cpus-per-node $(CPUS_PER_WORKER) --head-cpus $(HEAD_CPUS)

cluster-down: ## stop the local Ray cluster started by cluster-up (only its processes)
	$(PY) -m inventory_scale.distributed.cluster down --state $(RAY_STATE)

submit: setup ## ray job submit "inventory-scale pipeline ray=cluster ARGS" to RAY_ADDRESS (or cluster-up's)
	@addr="$(RAY_ADDRESS)"; [ -n "$$addr" ] || addr="$$(cat $(RAY_STATE)/address 2>/dev/null)"; \
	if [ -z "$$addr" ]; then echo "make submit: set RAY_ADDRESS=http://<head>:8265 or run make cluster-up" >&2; exit 2; fi; \
	echo "submitting to $$addr: inventory-scale pipeline ray=cluster $(ARGS)"; \
	RAY_AUTH_MODE="$${RAY_AUTH_MODE:-token}" PATH="$(abspath $(VENV))/bin:$$PATH" $(VENV)/bin/ray job submit \
		--address "$$addr" --runtime-env-json '$(RUNTIME_ENV)' -- inventory-scale pipeline ray=cluster $(ARGS)

bench-allocate: setup ## optimizer: 1M SKU-warehouse decisions via Ray (200 x 5,000), then greedy vs MILP gap
	$(PY) benchmarks/bench_allocate.py scale $(ARGS)
	$(PY) benchmarks/bench_allocate.py gap $(ARGS)

bench-ensemble: setup ## seed-ensemble members in the train stage: parallel Ray tasks vs one after another
	$(PY) benchmarks/bench_ensemble.py $(ARGS)

EXPERIMENT ?= policy_ab
bench-text: setup ## product text for cold start: text vs no text vs category-average launch baseline (synthetic; ARGS=--m5 adds M5)
	$(PY) benchmarks/bench_text.py $(ARGS)

bench-policy: setup ## policy A/B: generate (synthetic) + backtest +experiment=$(EXPERIMENT) (policy_ab | policy_ab_m5)
	@if [ "$(EXPERIMENT)" = "policy_ab" ]; then $(CLI) generate +experiment=$(EXPERIMENT) $(ARGS); fi
	$(CLI) backtest +experiment=$(EXPERIMENT) $(ARGS)

bench-scale: setup ## generate -> train -> forecast (-> optimize) at scale: time, memory, 1 vs 2 workers, Ray vs in-process
	$(PY) benchmarks/bench_scale.py $(ARGS)

clean: ## remove generated datasets, outputs and caches (keeps .venv)
	rm -rf datasets outputs .pytest_cache .mypy_cache .ruff_cache
	find . -name __pycache__ -type d -not -path './$(VENV)/*' -prune -exec rm -rf {} +
