# `make run` and `make test` do all the set-up on a fresh machine: they create .venv once and reuse it.
PY ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PY) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q torch==2.14.1 torchvision==0.29.1
	$(VENV)/bin/pip install -q -e '.[real,export,dev,ray]'
	touch $(STAMP)

.PHONY: setup run test lint bench
setup: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/blindspots run

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q
	$(VENV)/bin/ruff check src tests benchmarks

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks

bench: $(STAMP)
	$(VENV)/bin/python benchmarks/world_speed.py
