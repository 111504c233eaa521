# The two commands a fresh machine needs: `make demo` and `make test`.
SHELL  := /bin/bash
.SHELLFLAGS := -o pipefail -c
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.phitune-installed
TORCH_PIN := 2.13.0
export DS_BUILD_OPS := 0
export TOKENIZERS_PARALLELISM := false
export HF_HUB_OFFLINE := 1
export MLFLOW_ENABLE_TELEMETRY := false
export DO_NOT_TRACK := 1
# mlflow 3.17 reads only MLFLOW_DISABLE_TELEMETRY (or DO_NOT_TRACK=true, not 1) to turn telemetry off.
export MLFLOW_DISABLE_TELEMETRY := true

.PHONY: install demo test test-fast bench lint check-envs clean

install: $(STAMP)

# torch first, exactly pinned: the CPU wheel on local disk, so nothing can pull a CUDA build.
$(STAMP): pyproject.toml
	@echo "installing phitune into $(VENV): torch $(TORCH_PIN) (CPU), then phitune[all] (about 2 minutes the first time)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --upgrade "pip>=25" 2>&1 | { grep -v "is ignored" || true; }
	@$(BIN)/python -m pip install -q torch==$(TORCH_PIN) 2>&1 | { grep -v "is ignored" || true; }
	@$(BIN)/python -m pip install -q -e ".[all]" 2>&1 | { grep -v "is ignored" || true; }
	@# The import check runs under phitune's process settings: bitsandbytes announces a missing optional kernel on import.
	@$(BIN)/python -c "from phitune.process import configure_process; configure_process(); import phitune, torch, transformers, peft" \
		&& touch $(STAMP) && echo "installed: $(BIN)/phitune"

demo: $(STAMP)
	$(BIN)/phitune train examples/recipes/tiny-lora.yaml --output runs/demo --overwrite

# Two workers (pytest-xdist), one per core: most tests wait on single-threaded imports and subprocesses.
test: $(STAMP) lint
	$(BIN)/python -m pytest -q -n 2

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 -m "not slow"

# Azure ML YAMLs (components/, environments/, aml/): what azure-ai-ml accepts offline but Azure rejects.
lint: $(STAMP)
	$(BIN)/phitune lint components environments aml

# Resolves each Azure ML environment's pins with pip for the image's Python and platform (needs the package
# index, so not part of `make test`; the offline half runs there: tests/contract/test_environment_builds.py).
check-envs: $(STAMP)
	$(BIN)/python environments/check_envs.py --resolve

bench: $(STAMP)
	$(BIN)/python benchmarks/train_throughput.py
	$(BIN)/python benchmarks/inference.py
	$(BIN)/python benchmarks/serve_load.py
	$(BIN)/python benchmarks/cli_latency.py
	$(BIN)/python benchmarks/data_scale.py

clean:
	rm -rf runs mlruns mlruns.db .pytest_cache
