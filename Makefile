# Prometheus: `make demo` installs everything and runs the main job on the embedded market;
# `make test` installs and runs the tests; `make ui` starts the Dagster and MLflow UIs.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | sha1sum | cut -c1-12)

export PROMETHEUS_HOME ?= $(CURDIR)/.prometheus
export DAGSTER_HOME ?= $(PROMETHEUS_HOME)/dagster_home
export MPLCONFIGDIR ?= $(PROMETHEUS_HOME)/matplotlib
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := true
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export GX_ANALYTICS_ENABLED := false
export DAGSTER_DISABLE_TELEMETRY := true
export PYTHONUNBUFFERED := 1

PYTEST_ARGS ?= -n 2 -q --dist loadfile

.PHONY: install demo test ui lint clean-home bench stop

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@echo "==> [1/3] Python virtual environment in $(VENV)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
	@echo "==> [2/3] PyTorch (CPU wheel)"
	@set -o pipefail; $(BIN)/pip install -q --disable-pip-version-check torch==2.13.0 2>&1 | { grep -v "^WARNING: Location" || true; }
	@echo "==> [3/3] Prometheus and its pinned dependencies (a minute or two the first time)"
	@set -o pipefail; $(BIN)/pip install -q --disable-pip-version-check -c constraints.txt -e ".[dev]" 2>&1 | { grep -v "^WARNING: Location" || true; }
	@rm -f $(VENV)/.installed-*
	@touch $@
	@echo "==> installed"

demo: install
	@$(BIN)/python -m prometheus_dagster.cli demo

test: install
	@$(BIN)/python -m prometheus_dagster.cli setup-home >/dev/null
	@$(BIN)/python -m pytest $(PYTEST_ARGS)

ui: install
	@$(BIN)/python -m prometheus_dagster.cli ui

lint: install
	@$(BIN)/ruff check prometheus_dagster tests benchmarks

bench: install
	@$(BIN)/python -m benchmarks.run

# stops the project home's embedded PostgreSQL (Dagster's research instance) if it runs
stop:
	@test ! -x $(BIN)/python || $(BIN)/python -m prometheus_dagster.cli stop

clean-home: stop
	rm -rf $(PROMETHEUS_HOME)

# a local Celery cluster (one worker per tier queue, deploy/celery/celery.yaml): pid and log files
# under $(PROMETHEUS_HOME)/cluster; see deploy/README.md
.PHONY: cluster-up cluster-down cluster-status
cluster-up: install
	@$(BIN)/python -m prometheus_dagster.cluster up

cluster-down:
	@test ! -x $(BIN)/python || $(BIN)/python -m prometheus_dagster.cluster down

cluster-status:
	@$(BIN)/python -m prometheus_dagster.cluster status
