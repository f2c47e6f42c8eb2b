# One place that knows how to install, demo and test quarrydb.
# torch comes first and pinned (constraints.txt) so nothing pulls a multi-GB CUDA download.

VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/python -m pip
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_VERBOSITY ?= error

.PHONY: install system-packages demo test lint bench

install: system-packages $(VENV)/.installed

system-packages:
	bash .ci/system-packages

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -c constraints.txt torch==2.14.1 torchvision==0.29.1
	$(PIP) install -q -c constraints.txt -e '.[dev]'
	touch $@

demo: install
	$(PY) -m quarrydb.connectors.demo

test: install
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check .

bench: install
	$(PY) benchmarks/text_embedding.py
