# Two commands do all the set-up on a fresh machine with Python 3.11+:
#   make run    trains the character-level LM on Shakespeare, then prints test bits/char and a sample
#   make test   runs the test suite
# Both create (or reuse) the virtual environment .venv and install what they need into it.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test bench clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch 2.13.0 is a CPU build on local disk here; any other version is a multi-GB download.
	$(PY) -m pip install --quiet "torch==2.13.0"
	$(PY) -m pip install --quiet -e ".[test,interop]"
	touch $(STAMP)

run: $(STAMP)
	$(PY) -m experiments.char_lm --out runs/char_lm

test: $(STAMP)
	$(PY) -m pytest

# tcmalloc where installed (Debian: apt-get install libtcmalloc-minimal4): it cut step times here; the
# benchmark prints which allocator every row ran with.
TCMALLOC := $(firstword $(wildcard /usr/lib/*/libtcmalloc_minimal.so.4 /usr/lib/libtcmalloc_minimal.so.4))

bench: $(STAMP)
	LD_PRELOAD=$(TCMALLOC) $(PY) -m experiments.benchmark

clean:
	rm -rf $(VENV) .pytest_cache
