PYTHON ?= python3
PIP := $(PYTHON) -m pip

.PHONY: install install-test demo test test-slow docs bench

# PyTorch first, pinned, so pip takes the local CPU wheel instead of the CUDA build.
install:
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e .

# pyctcdecode (the asr tests) pins numpy < 2 in its metadata but runs on numpy 2: installed without its pins
install-test:
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[test]'
	$(PIP) install -q --no-deps 'pyctcdecode>=0.5' 'pygtrie>=2.1'

demo: install
	seqlm demo

# the default tier (ruff, then pytest: a few minutes on 2 cores); test-slow: the slow tier (full PTB runs,
# torchrun, the browser, recipes in subprocesses); docs: the manual, built strictly (a broken link fails)
test: install-test
	$(PYTHON) -m ruff check src tests bench
	SEQLM_DATA=$${SEQLM_DATA:-../shared/data} $(PYTHON) -m pytest

test-slow: install-test
	SEQLM_DATA=$${SEQLM_DATA:-../shared/data} $(PYTHON) -m pytest -m slow

docs: install-test
	$(PYTHON) -m seqlm.manual --check
	$(PYTHON) -m mkdocs build --strict

bench: install
	SEQLM_DATA=$${SEQLM_DATA:-../shared/data} $(PYTHON) bench/ngram.py
