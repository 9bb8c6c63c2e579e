# Set-up is a virtual environment in .venv with the pinned versions of constraints.txt.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SEEDS ?= 10
MODELS ?= antisymmetric cornn exprnn lipschitz nrnn
OUT ?= results/ecg

.PHONY: docs install reproduce reproduce-mnist-cpu reproduce-mnist-rows analyze theory-checks test test-slow bench clean

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[test]'
	# torchattacks (the reference for the FGSM test) declares torchvision, which does not
	# import beside this torch build and which it does not need here: install it alone.
	$(PY) -m pip install --quiet -c constraints.txt --no-deps torchattacks
	# the C++ cell engine is compiled here, once, not inside the first run (a failure only warns)
	-$(PY) -m noisyrnn.engine.build
	touch $@

install: $(VENV)/.installed

# Table 3 (ECG5000): $(MODELS), $(SEEDS) seeds, bundled data, offline.
reproduce: install
	$(VENV)/bin/noisyrnn --keep-freed-memory reproduce ecg --seeds $(SEEDS) --models $(MODELS) --out $(OUT) --workers 2 --threads 1

MNIST_DATA = $(if $(wildcard ../shared/data/mnist),--data-dir ../shared/data,--download)
# Tables 1-2 at CPU scale on the pixel task (T=784, 5 epochs, 2/1 seeds; 8444 s on 2 cores in docs/results/mnist_pixel)
reproduce-mnist-cpu: install
	$(VENV)/bin/noisyrnn reproduce mnist --protocol cpu --workers 2 --out results/mnist_pixel $(MNIST_DATA)

# The row-by-row proxy (T=28, ~15 min): not the paper's task
reproduce-mnist-rows: install
	$(VENV)/bin/noisyrnn reproduce mnist --protocol rows --out results/mnist_cpu $(MNIST_DATA)

# Theory diagnostics (Thm 2 margins, Jacobian products, Hessian spectra, Thm 3 bounds) of the
# ECG checkpoints `make reproduce` wrote, and Theorems 1/3 checked on small systems.
ANALYZE_MODELS ?= nrnn lipschitz
analyze: install
	$(VENV)/bin/noisyrnn analyze $(foreach m,$(ANALYZE_MODELS),$(wildcard $(OUT)/runs/$(m)/seed*)) --task ecg --out results/theory/ecg

theory-checks: install
	$(VENV)/bin/noisyrnn theory-checks --out results/theory/checks

bench: install
	$(PY) benchmarks/bench_recurrence.py

test: install
	$(PY) -m pytest -q

# The documentation site (MkDocs Material + mkdocstrings) into site/; --strict: a broken link or
# API reference fails the build.
$(VENV)/.docs: $(VENV)/.installed
	$(PY) -m pip install --quiet -c constraints.txt -e '.[docs]'
	touch $@

docs: $(VENV)/.docs
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet

test-slow: install
	$(PY) -m pytest -q -m slow

clean:
	rm -rf $(VENV) results site .pytest_cache
