# `make demo`: install everything and run the main job (TrackFormer on generated sequences).
# `make test`: install everything and run the test suite (what CI runs).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PLUGINS := $(foreach p,$(sort $(wildcard plugins/*/pyproject.toml)),-e $(dir $(p)))

.PHONY: install demo test test-slow bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml $(wildcard plugins/*/pyproject.toml)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -q -e ".[dev]" $(PLUGINS)
	$(BIN)/pip install -q --no-deps panopticapi-lite  # PQ test oracle; its numpy<2 pin is not needed
	touch $@

demo: install
	$(BIN)/trackformer run trackformer_synthetic

test: install
	$(BIN)/pytest

test-slow: install
	$(BIN)/pytest -m slow

bench: install
	for b in bench/bench_*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) runs
