PYTHON ?= python3
PIP := $(PYTHON) -m pip

.PHONY: install install-test demo test bench

# PyTorch first, pinned, so pip takes the local CPU wheel instead of the CUDA build.
install:
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e .

install-test:
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[test]'

demo: install
	seqlm demo

test: install-test
	SEQLM_DATA=$${SEQLM_DATA:-../shared/data} $(PYTHON) -m pytest

bench: install
	SEQLM_DATA=$${SEQLM_DATA:-../shared/data} $(PYTHON) bench/ngram.py
