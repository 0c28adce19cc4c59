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

# prometheus: the server tests/clusters/test_prometheus_ray.py starts on its own port. Its Debian
# service is not started (a policy-rc.d that denies it, see invoke-rc.d(8), unless one is there
# already) and is disabled, so nothing is left listening on :9090.
define INSTALL_PROMETHEUS_SERVICE_STOPPED
deny=/usr/sbin/policy-rc.d; made=; \
if [ ! -e $$deny ]; then printf "#!/bin/sh\nexit 101\n" > $$deny && chmod +x $$deny && made=1; fi; \
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus; rc=$$?; \
if [ -n "$$made" ]; then rm -f $$deny; fi; \
if [ -d /run/systemd/system ]; then systemctl disable prometheus >/dev/null 2>&1; fi; \
exit $$rc
endef

system-packages:
	@if [ ! -d /usr/share/datasets/fashion-mnist ] || ! $(PYTHON) -c 'import venv, ensurepip' 2>/dev/null \
		|| [ ! -x /usr/bin/prometheus ]; then \
		$(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv dataset-fashion-mnist && \
		$(SUDO) sh -c '$(INSTALL_PROMETHEUS_SERVICE_STOPPED)'; \
	fi

$(BIN)/evo: pyproject.toml | system-packages
	[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -c 'import torch' 2>/dev/null || $(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	# compat: the checkout goes on sys.path, so a folder named "evo" in the working directory (a run
	# called evo, holding Tune's "tune" folder) cannot shadow the package evo.tune
	$(BIN)/python -m pip install -q -e '.[dev,dashboard]' --config-settings editable_mode=compat
	touch $(BIN)/evo

run: setup
	$(BIN)/evo search

smoke: setup
	$(BIN)/evo search --preset smoke --name smoke-$$(date +%s)

# PYTHONFAULTHANDLER: a crash, even one at interpreter exit after pytest's own handler is off, prints every thread's stack
test: setup
	PYTHONFAULTHANDLER=1 $(BIN)/python -m pytest -q tests

benchmarks: setup
	$(BIN)/python benchmarks/transform_overhead.py
	$(BIN)/python benchmarks/search_overhead.py

clean:
	rm -rf $(VENV) .pytest_cache
