# The two commands the README opens with: `make quickstart` and `make test`.
# Everything installs from PyPI (and Debian, for the test browser); nothing by hand.

VENV ?= .venv
PY := $(VENV)/bin/python
RAG := $(VENV)/bin/rag
INDEX ?= .data/bank-index
MODEL ?= qwen2.5-1.5b
QUESTION ?= Can I refer someone who lives at the same address as me?
PYTEST_ARGS ?=

.PHONY: setup dev llamacpp models browser quickstart serve test lint docs

# What running rag needs, and no more: the quickstart compiles nothing.
setup: $(VENV)/.installed

# The test and lint tools, Ray, and llama.cpp's OpenAI-compatible server for the remote tests:
# llama-cpp-python is an sdist that compiles for this CPU (minutes; pip caches the wheel).
dev: $(VENV)/.dev

# The llama.cpp engine (`--engine llama.cpp`) the tests and bench/cpu_generate.py also cover.
llamacpp: $(VENV)/.llamacpp

# torch first, pinned to the CPU wheel on these machines' disk: an open range pulls a CUDA build.
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.dev: $(VENV)/.installed
	$(PY) -m pip install -q -e '.[dev,ray]'
	touch $@

$(VENV)/.llamacpp: $(VENV)/.dev
	$(PY) -m pip install -q -e '.[llamacpp]'
	touch $@

# The default generator, and the two the tests name (smollm2 for plumbing, the 0.5B for behaviour).
models: setup
	$(RAG) models pull smollm2-135m
	$(RAG) models pull qwen2.5-0.5b
	$(RAG) models pull $(MODEL)

browser:
	@command -v chromium >/dev/null || (apt-get update -q && apt-get install -y -q chromium)

# Fetch the sample bank corpus, index it, and answer a question from it.
quickstart: setup
	$(RAG) models pull $(MODEL)
	$(RAG) corpora fetch bank
	$(RAG) ingest "$$($(RAG) corpora path bank)" --index $(INDEX)
	$(RAG) ask "$(QUESTION)" --index $(INDEX) --model $(MODEL)

# Then chat in the browser at http://127.0.0.1:8000/
serve: quickstart
	$(RAG) serve --index $(INDEX) --model $(MODEL)

test: dev llamacpp models browser
	$(PY) -m pytest $(PYTEST_ARGS)

lint: dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

docs: setup
	$(PY) .ci/readme_help.py
