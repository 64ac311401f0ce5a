# The course's commands. The first two are the ones the README promises.
#   make lab    set up .venv (if needed) and open the course in JupyterLab, on your own
#               copies of the lessons (my-notebooks/, ignored by git)
#   make test   set up .venv (if needed) and run every test: pytest (with the browser
#               suite in tests/browser) + strict nbval
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export TF_CPP_MIN_LOG_LEVEL := 3
export PYDEVD_DISABLE_FILE_VALIDATION := 1
# Kernels inherit the environment: with MPLBACKEND=Agg (as some CI runners export) inline
# figures vanish, so no command here passes it on.
unexport MPLBACKEND

.PHONY: lab author restore test test-fast test-portability test-browser browser-deps notebooks images tables bench site setup clean-venv

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is needed: '$(PYTHON)' was not found (set PYTHON=/path/to/python3.11)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	# bnlib itself, editable: the one way every command and kernel finds this checkout's code.
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	# Build matplotlib's font cache now, so no notebook prints the one-time warning.
	MPLBACKEND=Agg $(BIN)/python -c 'import matplotlib.pyplot'
	touch $(STAMP)

# make lab: JupyterLab on your own copies of the lessons, in my-notebooks/ (git ignores it:
# made from notebooks/ when missing, never overwritten once you have changed them), opening
# on lesson 00. It serves the repository's root, so the lessons' ../images/ links and bnlib/
# are there; .jupyter/ holds the course's settings (no news pop-up, what the file browser
# hides, no save over a file git tracks), added to your own. tests/tools/course_lab.py.
lab: $(STAMP)
	$(BIN)/python tests/tools/course_lab.py learner $(LAB_FLAGS)

# make author: for contributors, the committed notebooks/ with the jupytext pairing (saving
# a lesson rewrites notebooks/NN_name.ipynb and notebooks/scripts/NN_name.py).
author: $(STAMP)
	$(BIN)/python tests/tools/course_lab.py author $(LAB_FLAGS)

# make restore NB=03: lesson 03's copy in my-notebooks/ made again from the committed one
# (a copy you changed is moved to my-notebooks/backups/ first).
restore: $(STAMP)
	$(BIN)/python tests/tools/course_lab.py restore $(NB)

# browser-deps first: CI machines start with nothing installed by hand.
# The unit tests run on both cores; the tests among them that start kernels or servers share
# one worker (xdist_group "kernels"): kernels started at once by separate processes can race
# for the same TCP ports and hang. Notebooks and the browser suite start kernels one at a time.
# Then strict nbval once more under another CPU's numerics (OpenBLAS kernel and NumPy SIMD
# loops one level below this machine's, initial weights nudged by 1e-15).
test: $(STAMP) browser-deps
	$(BIN)/python -m pytest tests -m "not browser" -rs -n 2 --dist loadgroup
	$(BIN)/python -m pytest notebooks -rs \
		--nbval --nbval-current-env --nbval-cell-timeout=600 \
		--nbval-sanitize-with tests/nbval_sanitize.cfg
	$(BIN)/python -m pytest tests/browser -m browser -rs
	$(BIN)/python tests/tools/portability.py

# Strict nbval under every environment of the matrix (kernels, SIMD levels, 1 and 2 BLAS
# threads, the nudge), then a table of every cell that differs anywhere.
test-portability: $(STAMP)
	$(BIN)/python tests/tools/portability.py --matrix

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
	$(BIN)/python tests/tools/build_notebooks.py $(NB)

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
	$(BIN)/python tests/tools/build_site.py _site $(SITE_FLAGS)

clean-venv:
	rm -rf $(VENV)
