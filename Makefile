# ddr_pipeline: one-command demo, tests, lint and viewers.
#   make demo      create .venv (if missing), install, run the demo pipelines
#   make test      install, run the test suite
#   make juniata   DDR's Juniata sample (data/01_raw/juniata): train + evaluate with DDR's protocol
#   make nwm-lakes NWM's LowerColorado_TX (data/01_raw/nwm_lower_colorado) routed with its lakes
# Variables: PYTHON (interpreter for the venv), TORCH_INDEX_URL (e.g. a PyTorch CPU/CUDA index),
# DEMO_PIPELINES (pipelines run by `make demo`, in order), KEDRO_ENV (e.g. `test`),
# DEMO_PARAMS (`--params` of the demo runs: a repeated `make demo` replaces its earlier training).

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_VERSION ?= 2.13.0
TORCH_INDEX_URL ?=
DEMO_PIPELINES ?= data_processing training evaluation routing
KEDRO_ENV ?=
DEMO_PARAMS ?= training.monitoring.replace_run=true
MLFLOW_PORT ?= 5000
JUNIATA_PIPELINES ?= data_processing training evaluation
JUNIATA_PARAMS ?= run_name=ddr-juniata-training,training.monitoring.replace_run=true

STAMP := $(VENV)/.ddr_pipeline-installed
# torch is installed (and pinned) on its own, so CPU and CUDA builds of it both satisfy the rest.
CONSTRAINTS := $(VENV)/constraints-without-torch.txt
KEDRO_ENV_FLAG := $(if $(KEDRO_ENV),--env $(KEDRO_ENV),)

export KEDRO_DISABLE_TELEMETRY := true

.PHONY: help install demo juniata nwm-lakes test lint viz mlflow-ui clean-outputs

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml constraints.txt | $(BIN)/python
	grep -v -i '^torch==' constraints.txt > $(CONSTRAINTS)
	$(BIN)/python -m pip install "torch==$(TORCH_VERSION)" \
		$(if $(TORCH_INDEX_URL),--index-url $(TORCH_INDEX_URL),)
	$(BIN)/python -m pip install -c $(CONSTRAINTS) -e ".[dev,cloud]"
	touch $@

install: $(STAMP)  ## create .venv if missing and install the project (once)

demo: $(STAMP)  ## run the demo pipelines (DEMO_PIPELINES, in order) on the committed DRB data
	@set -e; for p in $(DEMO_PIPELINES); do \
		echo "=== kedro run --pipelines $$p $(KEDRO_ENV_FLAG)"; \
		$(BIN)/kedro run --pipelines $$p $(KEDRO_ENV_FLAG) $(if $(DEMO_PARAMS),--params "$(DEMO_PARAMS)",); \
	done
	@echo "Done. Browse the runs with: make mlflow-ui   (or: $(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db)"

juniata: $(STAMP)  ## DDR's Juniata sample with DDR's protocol (conf/juniata; 2.5-4.5 min on 2 cores)
	@set -e; for p in $(JUNIATA_PIPELINES); do \
		echo "=== DDR_GEODATASET=juniata kedro run --pipelines $$p --env juniata"; \
		DDR_GEODATASET=juniata $(BIN)/kedro run --pipelines $$p --env juniata --params "$(JUNIATA_PARAMS)"; \
	done
	@echo "Scores: data/08_reporting/juniata/ddr-juniata-training/evaluation/comparison.csv"

nwm-lakes: $(STAMP)  ## NWM's LowerColorado_TX with its 30 lakes vs CHRTOUT (about 10-40 s)
	$(BIN)/python scripts/nwm_lakes_compare.py
	@echo "Tables: benchmarks/results/nwm_lakes_compare.md (docs/results.md, NWM domain with lakes)"

test: $(STAMP)  ## run the test suite
	$(BIN)/pytest

lint: $(STAMP)  ## ruff and the layering contract (import-linter, [tool.importlinter] in pyproject.toml)
	$(BIN)/ruff check .
	$(BIN)/lint-imports

viz: $(STAMP)  ## build the static Kedro-Viz site into build/ (serve: python -m http.server -d build)
	$(BIN)/kedro viz build

mlflow-ui: $(STAMP)  ## MLflow UI on http://127.0.0.1:5000 (port: MLFLOW_PORT)
	$(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db --host 127.0.0.1 --port $(MLFLOW_PORT)

clean-outputs:  ## delete pipeline outputs (data/02..08), keeping raw data, venv and MLflow runs
	find data/02_intermediate data/03_primary data/04_feature data/05_model_input data/06_models \
		data/07_model_output data/08_reporting -mindepth 1 ! -name .gitkeep -delete
