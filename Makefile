# The course's commands. The first two are the ones the README promises.
#   make lab    set up .venv (if needed) and open JupyterLab on notebooks/
#   make test   set up .venv (if needed) and run every test: pytest + strict nbval
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Every command below sees this checkout's bnlib first.
export PYTHONPATH := $(CURDIR)
export TF_CPP_MIN_LOG_LEVEL := 3
export PYDEVD_DISABLE_FILE_VALIDATION := 1
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: lab test test-fast notebooks images bench setup clean-venv

setup: $(STAMP)

$(STAMP): requirements.txt
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is needed: '$(PYTHON)' was not found (set PYTHON=/path/to/python3.11)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/python -c 'import sysconfig, pathlib; pathlib.Path(sysconfig.get_paths()["purelib"], "bnlib-course.pth").write_text("$(CURDIR)\n")'
	# Build matplotlib's font cache now, so no notebook prints the one-time warning.
	MPLBACKEND=Agg $(BIN)/python -c 'import matplotlib.pyplot'
	touch $(STAMP)

lab: $(STAMP)
	$(BIN)/jupyter lab --notebook-dir=notebooks --ServerApp.ip=127.0.0.1 $(ROOT_FLAG)

test: $(STAMP)
	$(BIN)/python -m pytest -n auto --dist loadscope tests notebooks \
		--nbval --nbval-current-env --nbval-cell-timeout=600 \
		--nbval-sanitize-with tests/nbval_sanitize.cfg

# Quick loop while writing code: the unit tests only, no notebooks.
test-fast: $(STAMP)
	$(BIN)/python -m pytest tests -x -q

# Re-execute notebooks top to bottom in a fresh kernel and save their outputs.
# NB=03 limits it to notebooks whose name starts with 03.
notebooks: $(STAMP)
	$(BIN)/python tests/tools/build_notebooks.py $(NB)

images: $(STAMP)
	MPLBACKEND=Agg $(BIN)/python -m bnlib.diagrams images

bench: $(STAMP)
	$(BIN)/python tests/benchmarks/bench_batchnorm.py

clean-venv:
	rm -rf $(VENV)
