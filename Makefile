# Two entry points: `make demo` and `make test`. Each creates .venv and installs both packages when needed.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test install clean

$(STAMP): pyproject.toml runtime/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e './runtime[litert,onnx,tflm]' -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/edgekd demo --out out/demo

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 tests

clean:
	rm -rf out .edgekd-cache .pytest_cache
