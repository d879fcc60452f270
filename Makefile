# Every target builds its own virtual environment first; `make demo` and `make test` are the
# two commands the README starts with.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv demo test lint unit bench clean

$(STAMP): pyproject.toml scripts/setup-system
	bash scripts/setup-system
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/swictationd --audio-file examples/audio/dictation.wav --realtime \
		--probe trace --trace examples/traces/demo-emergency.csv --config examples/demo.toml

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy -p swictation
	$(BIN)/lint-imports

# Four workers: most end-to-end time is real-time audio played or paced, not CPU, so four
# overlap it even on two cores; each worker loads the shared models once.
test: lint
	$(BIN)/python -m pytest -q -n 4 --dist worksteal

unit: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis
