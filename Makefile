# Set-up and checks.  `make demo` and `make test` are the README's two commands:
# each creates .venv (if needed) and installs everything it uses.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
# CPU build of torch first, so that nothing pulls the CUDA wheels
TORCH  ?= torch==2.13.0

.PHONY: install demo test bench clean chromium train-dynaprot ablation

# two stamps: `make demo` needs the package with its runtime extras only; `make test`
# adds the test extras (PyMOL, PyQt5, ProDy, MDAnalysisTests, Jupyter runners)
RUNTIME_STAMP := $(VENV)/.installed-runtime

$(RUNTIME_STAMP): pyproject.toml Makefile
	@echo "== setting up $(VENV): pip, then $(TORCH) (CPU build, about 200 MB), then dynaprot-viz[all] (a few minutes the first time)"
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(TORCH)
	$(PIP) install -q -e ".[all]"
	touch $(RUNTIME_STAMP)

$(STAMP): $(RUNTIME_STAMP)
	@echo "== adding the test extras to $(VENV) (pytest, ProDy, PyMOL, PyQt5, Jupyter runners)"
	$(PIP) install -q -e ".[all,test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(RUNTIME_STAMP)
	rm -rf out/1ubi && mkdir -p out
	$(VENV)/bin/dynaprot-viz predict examples/data/1ubi.pdb --model anm --samples 20 --out out/1ubi > out/1ubi-summary.txt
	mv out/1ubi-summary.txt out/1ubi/summary.txt
	cat out/1ubi/summary.txt
	@echo "open out/1ubi/1ubi.annotated.pdb in PyMOL and type: show ellipsoids"

# the browser test of the standalone page needs Debian's chromium: as root, `make test`
# installs it with apt-get and says so; otherwise that one test is skipped with a reason
chromium:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  echo "== installing Debian's chromium with apt-get (running as root) for the headless page test" && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || \
	  echo "note: chromium not installed (needs root and apt-get); the browser test will be skipped"; }

test: install chromium
	$(PY) -m pytest -q

bench: install
	$(PY) benchmarks/run_all.py

# the shipped DynaProt weights, every step on a 2-core CPU (about an hour; rerun to resume).
# Needs runs/pdb_backbones/promod3_backbones.npz (datasets/pdb_backbones/README.md) and ../shared
train-dynaprot: $(RUNTIME_STAMP)
	$(PY) -m dynaprot_viz.training.pipeline --export dynaprot_viz/weights/dynaprot.safetensors

# the model card's ablation table (after train-dynaprot and the ablation configs; minutes)
ablation: $(RUNTIME_STAMP)
	$(PY) -m dynaprot_viz.training.ablation

clean:
	rm -rf $(VENV) out .pytest_cache
