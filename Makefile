# Two entry points that work on a fresh Debian machine with Python 3.11:
#   make demo   - set up .venv, fetch the detector model, run the main job on real data
#   make test   - set up .venv, run the test suite
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test bench venv sysdeps clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

# Real importers the export tests check against (Debian packages); skipped when not root.
sysdeps:
	@bash tools/install_sysdeps.sh

demo: $(STAMP)
	$(VENV)/bin/mocap demo

test: $(STAMP) sysdeps
	$(PY) -m pytest -q tests

bench: $(STAMP)
	$(PY) -m pip install -q -e '.[test,bench]'
	$(PY) -m pip install -q --no-deps aniposelib==0.8.0
	$(VENV)/bin/mocap bench all

clean:
	rm -rf $(VENV) build *.egg-info
