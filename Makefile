# Entry points that work on a fresh Debian machine with Python 3.11:
#   make demo   - set up .venv, fetch the detector model, run the main job on real data
#   make test   - set up .venv, run the test suite
#   make lint   - check the code's shape (long functions, private names used across modules)
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench venv sysdeps clean

# aniposelib (the calibration interop test, and `make bench`) goes in with --no-deps: its
# opencv-contrib-python requirement would replace our OpenCV. What aniposelib.cameras imports
# beyond our own requirements (toml, pandas) is in the [test] extra.
$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	$(PY) -m pip install -q --no-deps aniposelib==0.8.0
	touch $(STAMP)

venv: $(STAMP)

# Real importers the export tests check against (Debian packages); skipped when not root.
sysdeps:
	@bash tools/install_sysdeps.sh

demo: $(STAMP)
	$(VENV)/bin/mocap demo

# With CI set (CI services set it), a test whose tool or package is missing fails instead of
# skipping (tests/conftest.py).
test: $(STAMP) sysdeps
	$(PY) -m pytest -q tests

# Code shape: no function over 80 lines, no private name imported across modules
# (tests/test_code_shape.py checks the same).
lint: $(STAMP)
	$(PY) tools/code_shape_check.py mocap

bench: $(STAMP)
	$(PY) -m pip install -q -e '.[test,bench]'
	$(VENV)/bin/mocap bench all

clean:
	rm -rf $(VENV) build *.egg-info
