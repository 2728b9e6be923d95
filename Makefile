# Set-up and checks.  `make demo` and `make test` are the README's two commands:
# each creates .venv (if needed) and installs everything it uses.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
# CPU build of torch first, so that nothing pulls the CUDA wheels
TORCH  ?= torch==2.13.0

.PHONY: install demo test bench clean chromium

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(TORCH)
	$(PIP) install -q -e ".[all,test]"
	touch $(STAMP)

install: $(STAMP)

demo: install
	rm -rf out/1ubi && mkdir -p out
	$(VENV)/bin/dynaprot-viz predict examples/data/1ubi.pdb --model anm --samples 20 --out out/1ubi > out/1ubi-summary.txt
	mv out/1ubi-summary.txt out/1ubi/summary.txt
	cat out/1ubi/summary.txt
	@echo "open out/1ubi/1ubi.annotated.pdb in PyMOL and type: show ellipsoids"

# the browser test of the standalone page needs Debian's chromium (skipped with a reason without it)
chromium:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || \
	  echo "note: chromium not installed; the browser test will be skipped"; }

test: install chromium
	$(PY) -m pytest -q

bench: install
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) out .pytest_cache
