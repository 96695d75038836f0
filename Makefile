# The README's commands. Everything runs inside .venv/ (made by `make install`).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install constraints train test test-all bench bench-search bench-serving bench-warmstart bench-targets bench-scale bench-robustness bench-reliability bench-peers lint format clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt setuptools wheel
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev,sweeps,mlflow,export]"
	touch $(STAMP)

## install: virtualenv in .venv with recctl (editable) and the exact tested set (constraints.txt)
install: $(STAMP)

## constraints: re-pin constraints.txt to what .venv holds (after a deliberate upgrade)
constraints: install
	{ sed -n '1,2p' constraints.txt; $(BIN)/python -m pip freeze --all --exclude-editable | grep -v '^pip=='; } > constraints.txt.new
	mv constraints.txt.new constraints.txt

## train: prepare the embedded synthetic dataset, train the default model, test it beside pop
train: install
	$(BIN)/recctl train

## test: the CI suite (fast; `slow` checks excluded)
test: install
	$(BIN)/python -m pytest -q

## test-all: every test, the slow ones included
test-all: install
	$(BIN)/python -m pytest -q -m ""

## bench: quality and timing figures on ml-100k and synthetic data (see BENCHMARKS.md)
bench: install
	$(BIN)/python benchmarks/run.py
	$(BIN)/python benchmarks/search.py

## bench-search: a 20-trial Optuna search of mf on ml-100k with and without median pruning (about 10 min)
bench-search: install
	$(BIN)/python benchmarks/search.py $(ARGS)

## bench-robustness: every family's defaults on data shapes they were not tuned on (about 40 min)
bench-robustness: install
	$(BIN)/python benchmarks/robustness.py

## bench-targets: issue #8's time-to-model targets on ml-100k against RecBole's reference figures
bench-targets: install
	$(BIN)/python benchmarks/targets.py

## bench-warmstart: ml-100k replayed week by week: warm start (init_from, carry_optimizer) against from scratch, mf and lstm (about 15 min)
bench-warmstart: install
	$(BIN)/python benchmarks/warmstart.py $(ARGS)

## bench-serving: exported mf and attention at 50k items: p50/p99 per request and users/s per format, beside a numpy/TF floor (about 15 min)
bench-serving: install
	$(BIN)/python benchmarks/serving.py $(ARGS)

## bench-scale: prepare 1M/10M (CSV, Parquet), examples/s per family, eval 100k x 50k, 20M end to end
bench-scale: install
	$(BIN)/python benchmarks/scale.py

## bench-reliability: kill-and-resume runs (metrics compared) and concurrent writers (collisions counted)
bench-reliability: install
	$(BIN)/python benchmarks/reliability.py

## bench-peers: recctl beside RecBole 1.2.1 on the same ml-100k split; installs .venv-peers/ (ARGS="--epochs 30 ..."); ARGS="--rating": beside scikit-surprise (.venv-peers-surprise/)
bench-peers: install
	$(BIN)/python benchmarks/peers/run.py $(ARGS)

lint: install
	$(BIN)/ruff check recctl tests benchmarks
	$(BIN)/ruff format --check recctl tests benchmarks

format: install
	$(BIN)/ruff format recctl tests benchmarks
	$(BIN)/ruff check --fix recctl tests benchmarks

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
