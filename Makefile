# revo: `make up` starts the platform on this machine, `make test` runs the suite.
# Both create the virtualenv and install what they need on first use.
SHELL := /bin/bash
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.revo-installed

.PHONY: up down status test lint format bench proto model install clean

$(INSTALLED): pyproject.toml scripts/install.sh
	bash scripts/install.sh $(VENV)
	touch $@

install: $(INSTALLED)

# Converts the embedded SmolLM2 GGUF to safetensors once (cached under ~/.cache/revo).
model: $(INSTALLED)
	$(BIN)/python -m revo_inference.prepare_model

up: model
	$(BIN)/revo up

down:
	@if [ -x $(BIN)/revo ]; then $(BIN)/revo down; else echo "nothing to stop"; fi

status: $(INSTALLED)
	$(BIN)/revo status

test: model
	bash scripts/test.sh

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(INSTALLED)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: model
	$(BIN)/python bench/inference_overhead.py
	$(BIN)/python bench/startup.py
	$(BIN)/python bench/runs.py
	$(BIN)/python bench/gateway.py
	$(BIN)/python bench/routing.py
	$(BIN)/python bench/ledger.py
	$(BIN)/python bench/memory.py
	$(BIN)/python bench/memory_cpu.py
	$(BIN)/python bench/bus_auth.py
	$(BIN)/python bench/integrations.py
	$(BIN)/python bench/integrations_github_client.py
	$(BIN)/python bench/chaos.py

proto: $(INSTALLED)
	$(BIN)/python -m revo_contracts.proto

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
