# Two entry points for a fresh Debian/Ubuntu machine (see README):
#   make run    set up, then run the embedded default search (LeNet-5, Fashion-MNIST, local Ray)
#   make test   set up, then run the test suite
PYTHON ?= python3
VENV ?= .venv
# The CPU build of torch. On a CUDA machine install the CUDA build into $(VENV) first:
# setup keeps a torch that is already there, so nothing pulls a multi-GB build by accident.
TORCH_SPEC ?= torch==2.13.0
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
BIN := $(VENV)/bin

.PHONY: setup system-packages run test smoke benchmarks clean
setup: $(BIN)/evo

system-packages:
	@if [ ! -d /usr/share/datasets/fashion-mnist ] || ! $(PYTHON) -c 'import venv, ensurepip' 2>/dev/null; then \
		$(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv dataset-fashion-mnist; \
	fi

$(BIN)/evo: pyproject.toml | system-packages
	[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -c 'import torch' 2>/dev/null || $(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e '.[dev,dashboard]'
	touch $(BIN)/evo

run: setup
	$(BIN)/evo search

smoke: setup
	$(BIN)/evo search --preset smoke --name smoke-$$(date +%s)

test: setup
	$(BIN)/python -m pytest -q tests

benchmarks: setup
	$(BIN)/python benchmarks/transform_overhead.py
	$(BIN)/python benchmarks/search_overhead.py

clean:
	rm -rf $(VENV) .pytest_cache
