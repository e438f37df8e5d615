# FNOReg set-up. `make demo` and `make test` each build the virtual environment from scratch
# when it is missing. A GPU user picks their own torch build:  make test TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"
PYTHON     ?= python3
VENV       ?= .venv
TORCH_SPEC ?= torch==2.13.0
EXTRAS     ?= train,cpu,dev
PY         := $(VENV)/bin/python
STAMP      := $(VENV)/.fnoreg-installed

.PHONY: venv demo test test-fast bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e ".[$(EXTRAS)]"
	touch $(STAMP)

demo: venv
	$(PY) -m fnoreg_core.demo

test: venv
	$(PY) -m pytest -q

test-fast: venv
	$(PY) -m pytest -q -m "not slow"

bench: venv
	$(PY) benchmarks/spectral_ops.py

clean:
	rm -rf $(VENV) build *.egg-info
