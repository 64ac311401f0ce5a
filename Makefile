# The course's commands. The first two are the ones the README promises.
#   make lab    set up .venv (if needed) and open the course in JupyterLab, on your own
#               copies of the lessons (my-notebooks/, ignored by git)
#   make test   set up .venv (if needed) and run every test: pytest (with the browser
#               suite in tests/browser) + strict nbval
SHELL := /bin/bash
# The newest Python 3.11-3.13 that runs from the PATH; `make lab PYTHON=/path/to/python3.12`
# chooses another. Only the first setup uses it (.venv/ keeps the Python it was made with).
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do $$p -c 'import sys; \
	sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 13))' 2>/dev/null && { echo $$p; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export TF_CPP_MIN_LOG_LEVEL := 3
export PYDEVD_DISABLE_FILE_VALIDATION := 1
# Kernels inherit the environment: with MPLBACKEND=Agg (as some CI runners export) inline
# figures vanish, so no command here passes it on.
unexport MPLBACKEND

.PHONY: lock lab author restore test test-fast test-portability test-browser browser-deps notebooks images tables bench site setup clean-venv

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@test -x $(BIN)/python || test -n "$(PYTHON)" || { echo "Python 3.11, 3.12 or 3.13 is needed and none was found on the PATH (make PYTHON=/path/to/python3.12 ...)"; exit 1; }
	@test -x $(BIN)/python || echo "Making .venv/ with $$($(PYTHON) -c 'import sys; print(sys.executable, "(Python " + sys.version.split()[0] + ")")'), the newest Python 3.11-3.13 found"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); echo "'$(PYTHON) -m venv' failed: on Debian or Ubuntu, install the venv module first (sudo apt install $(notdir $(PYTHON))-venv)"; exit 1; }
	# uv (pinned in requirements.txt) installs the lock: several times faster than pip.
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "$$(grep -m1 '^uv==' requirements.txt)"
	$(BIN)/uv pip install --quiet --python $(BIN)/python -r requirements.txt
	# bnlib itself, editable: the one way every command and kernel finds this checkout's code.
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	# Build matplotlib's font cache now, so no notebook prints the one-time warning.
	MPLBACKEND=Agg $(BIN)/python -c 'import matplotlib.pyplot'
	touch $(STAMP)

# make lock: requirements.txt made again from requirements.in (uv's universal resolution:
# every platform and Python 3.11-3.13, keeping the versions already in requirements.txt).
# tests/test_requirements.py checks it is current and resolves on each platform.
lock: $(STAMP)
	$(BIN)/uv pip compile requirements.in --universal --python-version 3.11 -o requirements.txt

# make lab: JupyterLab on your own copies of the lessons, in my-notebooks/ (git ignores it:
# made from notebooks/ when missing, never overwritten once you have changed them), opening
# on lesson 00. It serves the repository's root, so the lessons' ../images/ links and bnlib/
# are there; .jupyter/ holds the course's settings (no news pop-up, what the file browser
# hides, no save over a file git tracks), added to your own. tools/course_lab.py.
lab: $(STAMP)
	$(BIN)/python -m tools.course_lab learner $(LAB_FLAGS)

# make author: for contributors, the committed notebooks/ with the jupytext pairing (saving
# a lesson rewrites notebooks/NN_name.ipynb and notebooks/scripts/NN_name.py).
author: $(STAMP)
	$(BIN)/python -m tools.course_lab author $(LAB_FLAGS)

# make restore NB=03: lesson 03's copy in my-notebooks/ made again from the committed one
# (a copy you changed is moved to my-notebooks/backups/ first).
restore: $(STAMP)
	$(BIN)/python -m tools.course_lab restore $(NB)

# browser-deps first: CI machines start with nothing installed by hand.
# The unit tests run on both cores; the tests among them that start kernels or servers share
# one worker (xdist_group "kernels"): kernels started at once by separate processes can race
# for the same TCP ports and hang. The notebooks run two at a time, each worker starting its
# kernels under one lock (tests/nbval_parallel.py); the browser suite starts one at a time.
# Then strict nbval once more under another CPU's numerics (OpenBLAS kernel and NumPy SIMD
# loops one level below this machine's, initial weights nudged by 1e-15), and the other
# supported Pythons this machine has (install, the core's unit tests, one lesson).
test: $(STAMP) browser-deps
	$(BIN)/python -m pytest tests -m "not browser" -rs -n 2 --dist loadgroup
	$(BIN)/python -m pytest notebooks -rs -n 2 --dist loadfile -p tests.nbval_parallel \
		--nbval --nbval-current-env --nbval-cell-timeout=600 \
		--nbval-sanitize-with tests/nbval_sanitize.cfg
	$(BIN)/python -m pytest tests/browser -m browser -rs
	$(BIN)/python -m tools.portability
	$(BIN)/python -m tools.other_pythons

# Strict nbval under every environment of the matrix (kernels, SIMD levels, 1 and 2 BLAS
# threads, the nudge), then a table of every cell that differs anywhere.
test-portability: $(STAMP)
	$(BIN)/python -m tools.portability --matrix

# Quick loop while writing code: the unit tests only, no notebooks.
test-fast: $(STAMP)
	$(BIN)/python -m pytest tests -x -q -m "not browser and not slow"

# The browser suite alone: every lesson run in JupyterLab in Chromium, every explorer moved.
test-browser: $(STAMP) browser-deps
	$(BIN)/python -m pytest tests/browser -v

# Debian's chromium for the browser suite: apt-get installs it when it is missing and we
# are root. Without it the suite skips (saying how to enable it), except with CI=true,
# where this step fails.
browser-deps: $(STAMP)
	$(BIN)/python tests/browser/chromium.py

# Re-execute notebooks top to bottom in a fresh kernel and save their outputs.
# NB=03 limits it to notebooks whose name starts with 03.
notebooks: $(STAMP)
	$(BIN)/python -m tools.build_notebooks $(NB)

images: $(STAMP)
	MPLBACKEND=Agg $(BIN)/python -m bnlib.course.diagrams images
	MPLBACKEND=Agg $(BIN)/python -m bnlib.lessons.lesson09.diagram images

# Train again the explorer tables after changing the training code: lesson 05's 70 settings
# from 3 seeds with their 1e-15-nudge sensitivities (runs.npz, ~3 min of CPU) and its depth
# runs (depth.npz, ~20 s), and lesson 09's 60 CNN runs
# (~190 s), each saved in its lesson package.
tables: $(STAMP)
	$(BIN)/python -m bnlib.lessons.lesson05.explore
	$(BIN)/python -m bnlib.lessons.lesson09.explore
	$(BIN)/python -m bnlib.lessons.lesson10.explore

bench: $(STAMP)
	$(BIN)/python tests/benchmarks/bench_batchnorm.py
	$(BIN)/python tests/benchmarks/bench_conv.py
	$(BIN)/python tests/benchmarks/bench_explorers.py

# The course as a static book in _site/ (not committed; open _site/index.html): Sphinx with
# myst-nb and the book theme, from the committed outputs, with formulas typeset offline.
# SITE_FLAGS=--execute runs every notebook afresh first (minutes instead of seconds).
site: $(STAMP)
	$(BIN)/python -m tools.build_site _site $(SITE_FLAGS)

clean-venv:
	rm -rf $(VENV)
