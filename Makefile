# RNN Suite: set-up, demo, tests and the MLflow UI. Every target creates .venv first.
#
#   make demo   train the default slot-filling model on ATIS, tracked in MLflow
#   make test   run the test suite
#   make lint   ruff's linter and formatter check (make format applies them)
#   make ui     open the MLflow UI over ./mlflow.db on http://127.0.0.1:5000
#   make bench  the performance benchmarks (docs/performance.md): cells, pipelines, predict latency

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Data sets: a local copy if one sits beside the checkout, else the user cache
# (files missing there are downloaded). Override: make demo RNN_SUITE_DATA=/path
RNN_SUITE_DATA ?= $(abspath $(wildcard ../shared/data))
export RNN_SUITE_DATA
UI_PORT ?= 5000

.PHONY: setup demo test lint format ui lecture bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $@

# The default model; 10 epochs keep set-up (about 3.3 min) and training (26 s an epoch)
# within 10 minutes on 2 cores.
demo: setup
	$(BIN)/python -m apps.slot_filling train --dataset atis --epochs 10
	@echo
	@echo "Open the runs in the MLflow UI:  make ui   (then http://127.0.0.1:$(UI_PORT))"

# Two workers, a test file each at a time (module fixtures train once): on 2 cores the suite
# spends much of its time in single-threaded work (imports, tracing, MLflow), so this halves it.
test: setup
	$(BIN)/python -m pytest -n 2 --dist loadfile --durations=30

# ruff (pinned in requirements.txt, configured in pyproject.toml): the linter and the formatter.
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

ui: setup
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlflow.db --host 127.0.0.1 --port $(UI_PORT)

lecture: setup
	$(BIN)/python -m apps.lecture

# About 10 minutes on 2 idle cores; run nothing else beside it, the figures are wall-clock times.
bench: setup
	$(BIN)/python -m benchmarks.cells
	$(BIN)/python -m benchmarks.pipelines
	$(BIN)/python -m benchmarks.predict_latency

clean:
	rm -rf $(VENV) .pytest_cache
