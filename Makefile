# Two commands set everything up on a fresh clone:
#   make run    install (pinned, into .venv/) and run the training flow on the built-in data
#   make test   install and run the tests
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV    := .venv
PY      := $(VENV)/bin/python
UV      := $(VENV)/bin/uv
STAMP   := $(VENV)/.installed
PYTHON  ?= python3

# No telemetry: the servers would try to phone home and log errors offline.
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1
export GX_ANALYTICS_ENABLED := false
export DVC_NO_ANALYTICS := 1
# Prefect keeps its settings and local database in the project (not ~/.prefect).
export PREFECT_HOME ?= $(CURDIR)/.prefect
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
# The temporary server a flow starts when no server is up creates its database on the first
# run: on a busy machine that passes Prefect's 20 s default and `make run` failed.
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 120

PREFECT_PORT ?= 4200
PREFECT_URL  := http://127.0.0.1:$(PREFECT_PORT)/api
# Use the local Prefect server when one is up (make server); else Prefect starts a temporary one.
USE_SERVER   = $(PY) -c "import urllib.request,sys; urllib.request.urlopen('$(PREFECT_URL)/health', timeout=1)" 2>/dev/null && export PREFECT_API_URL=$(PREFECT_URL) && echo "using the Prefect server at http://127.0.0.1:$(PREFECT_PORT)";

.PHONY: help install setup docs run init plots reproduce rollback models reindex serve lineage replay score server deploy worker monitor monitor-ui demo bench lint test test-fast lock clean-venv

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): requirements.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@test -x $(UV) || $(PY) -m pip install --quiet --disable-pip-version-check uv==0.9.30
	$(UV) pip sync --quiet --compile-bytecode --python $(PY) requirements.lock
	@$(PY) -m tasks.core.quality.data_docs install
	@touch $@

install: $(STAMP) ## install the pinned environment into .venv/

setup: install ## install, and prepare git and DVC for recording runs
	@git rev-parse --git-dir >/dev/null 2>&1 || { echo "not a git checkout: clone the repository with git"; exit 1; }
	@git config user.name >/dev/null || git config user.name "churn-workflow"
	@git config user.email >/dev/null || git config user.email "churn-workflow@localhost"
	@mkdir -p data/external

run: setup ## run the training flow (all dvc.yaml stages) on the built-in simulator
	@$(USE_SERVER) $(PY) -m flows.training

plots: install ## declare in dvc.yaml the evaluation plots of params.yaml's problem.type (after changing it)
	@$(PY) -m flows.runtime.plots

init: install ## propose params.yaml's collect and problem for your file: make init DATA=data/external/x.csv [TARGET=column] [WRITE=1]
	@test -n "$(DATA)" || { echo "usage: make init DATA=data/external/<file.csv or .parquet> [TARGET=column] [WRITE=1]"; exit 2; }
	@$(PY) -m tasks.core.quality.inspect "$(DATA)" $(if $(WRITE),--write) $(if $(TARGET),--target "$(TARGET)")
	@$(if $(WRITE),$(PY) -m flows.runtime.plots,true)

reproduce: setup ## restore a recorded run and recompute it: make reproduce RUN=<experiment>
	@test -n "$(RUN)" || { echo "usage: make reproduce RUN=<experiment name from dvc exp show>"; exit 2; }
	$(PY) -m flows.reproduce "$(RUN)"

rollback: install ## point the champion back at the previous one (or TO=v0002)
	$(PY) -m tasks.core.serving.registry_cli rollback $(if $(TO),--to $(TO))

models: install ## list registered model versions and which is champion
	$(PY) -m tasks.core.serving.registry_cli show

reindex: install ## rebuild registry/index.jsonl from the versions whose model matches its card
	$(PY) -m tasks.core.serving.registry_cli reindex

serve: install ## the prediction API on http://127.0.0.1:8000 (docs at /docs)
	$(PY) -m service.serve

lineage: install ## the chain behind a prediction: make lineage ID=<request id>
	@test -n "$(ID)" || { echo "usage: make lineage ID=<request id from /predict>"; exit 2; }
	$(PY) -m service.lineage "$(ID)"

replay: install ## put prediction rows kept in failed/ (a database outage) back into the store
	$(PY) -m service.replay

score: install ## batch-score a file with the champion: make score IN=data/external/new.csv
	@test -n "$(IN)" || { echo "usage: make score IN=<csv or parquet under data/>"; exit 2; }
	$(PY) -m flows.batch_scoring "$(IN)"

server: install ## start the Prefect server and UI on http://127.0.0.1:4200 (Ctrl-C stops it)
	$(VENV)/bin/prefect server start --host 127.0.0.1 --port $(PREFECT_PORT)

# The Prefect API of `deploy` and `worker`: PREFECT_API_URL when set (a server elsewhere), else make server's.
API_URL = PREFECT_API_URL=$${PREFECT_API_URL:-$(PREFECT_URL)}
deploy: setup ## serve the deployments to the server (make server); POOL=churn: put them on that work pool instead
	$(API_URL) $(PY) -m flows.deployments $(if $(POOL),--pool $(POOL))

POOL_NAME = $(or $(POOL),churn)
worker: setup ## a Prefect worker running the work pool's flows in this checkout: make worker [POOL=churn]
	$(API_URL) CHURN_PROJECT_DIR=$(CURDIR) PYTHONPATH=$(CURDIR) $(VENV)/bin/prefect worker start --pool $(POOL_NAME) --type process

monitor: install ## run the monitoring flow once now (drift, live KPIs, input quality; may alert)
	@$(USE_SERVER) $(PY) -m flows.monitoring

monitor-ui: install ## the Evidently UI with the monitoring dashboard on http://127.0.0.1:8001
	@mkdir -p monitoring/evidently
	$(VENV)/bin/evidently ui --workspace monitoring/evidently --host 127.0.0.1 --port 8001

lint: install ## style (ruff) and the layer contracts (import-linter); part of make test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check --quiet . || { echo "run: .venv/bin/ruff format ."; exit 1; }
	$(VENV)/bin/lint-imports --no-cache

TEST_WORKERS ?= 2
test: setup lint ## run the test suite (slow tests included) on TEST_WORKERS processes (0: one, in this process)
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile

test-fast: setup lint ## run the tests not marked slow
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile -m "not slow"

demo: setup ## the whole loop on the simulator: drift, alert, retraining, recovery (DEMO_ARGS="--drift concept")
	$(PY) -m demo $(DEMO_ARGS)

bench: setup ## benchmarks against plain baselines -> benchmarks/results.json (BENCH_ARGS=--quick: a smoke run)
	$(PY) -m benchmarks $(BENCH_ARGS)

docs: install ## build the documentation site into site/ (mkdocs --strict; the params reference regenerated first)
	$(PY) -m devtools.params_reference
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet
	@echo "docs built: open site/index.html (or .venv/bin/mkdocs serve for a live preview)"

lock: ## re-resolve requirements.lock from pyproject.toml (needs the package index)
	@test -x $(UV) || { $(PYTHON) -m venv $(VENV) && $(PY) -m pip install --quiet uv==0.9.30; }
	$(UV) pip compile pyproject.toml --extra test --extra docs -o requirements.lock --python-version 3.11 --generate-hashes --quiet

clean-venv: ## remove the virtual environment
	rm -rf $(VENV)
