# Two entry points (see README.md):
#   make book   build the book at full scale into _build/html
#   make test   unit tests + fingerprints + every notebook at CI scale in a warnings-as-errors book build
# Everything runs in an isolated virtual environment (.venv) with the pinned versions of
# requirements-lock.txt.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

export PYTHONHASHSEED := 0
export JAX_PLATFORMS ?= cpu
export PYDEVD_DISABLE_FILE_VALIDATION := 1

.PHONY: book test env data lint unit recheck fingerprints notebooks book-ci consistency bench clean chromium browser-check links-check lab lab-env

env: $(STAMP)

$(STAMP): requirements-lock.txt pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11 or newer is needed, found " + sys.version.split()[0]'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-lock.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $@

data: env
	$(BIN)/python -m gridlib.data fetch

# ---- the book (full scale) --------------------------------------------------------------
book: env data
	rm -rf _build/html _build/jupyter_execute _build/.doctrees
	$(BIN)/python -m gridlib export-web
	GRIDLIB_SCALE=full $(BIN)/jupyter-book build . --all
	$(BIN)/python tests/browser/check_links.py _build/html
	@echo "open _build/html/index.html"

# ---- the tests (CI scale) ---------------------------------------------------------------
# The chapters run once, in book-ci: a cell that raises fails that build (_config.yml's
# allow_errors: false, reported as a warning that -W makes fatal, its traceback printed below).
# `make notebooks` runs them cell by cell under nbval instead, in parallel, for a quicker look.
test: env data lint chromium unit fingerprints book-ci consistency links-check browser-check

lint:
	@if git ls-files 'notebooks/*.ipynb' | grep -q .; then \
	  echo "error: .ipynb files are committed under notebooks/ (the sources are MyST .md)"; exit 1; fi
	$(BIN)/ruff check gridlib tests benchmarks _ext examples

# Test files (and notebooks) run in WORKERS processes (pytest-xdist), each file whole on one
# worker, so module fixtures and a notebook's cells keep their order; WORKERS=0 runs serially.
WORKERS ?= 2

unit:
	GRIDLIB_SCALE=ci $(BIN)/python -m pytest -q -n $(WORKERS) --dist loadfile tests

# Every published run's fingerprint (its first minibatches, taken from the commit that made it)
# against this code's: a change that moves any published number fails here until the record is
# remade or its drift declared (python -m gridlib reproduce --check; gridlib/fingerprint.py).
fingerprints:
	$(BIN)/python -m gridlib reproduce --check --workers $(if $(filter 0,$(WORKERS)),1,$(WORKERS))

# Re-run the first epoch of published results and compare with their records (not part of
# make test: the fingerprints above cover every record in a fraction of the time).
RECHECK ?= baselines/mnist-mlp-784-500-10_seed0 ep/mnist_784-500-10_ep_seed0

recheck:
	$(BIN)/python -m gridlib recheck $(RECHECK)

notebooks:
	rm -rf _build/nbval && mkdir -p _build/nbval
	for f in notebooks/*.md; do \
	  $(BIN)/jupytext --quiet --to ipynb -o "_build/nbval/$$(basename "$${f%.md}").ipynb" "$$f" || exit 1; \
	done
	GRIDLIB_SCALE=ci $(BIN)/python -m pytest -q -p no:cacheprovider --nbval-lax --nbval-current-env \
	  --nbval-cell-timeout=900 -n $(WORKERS) --dist loadfile _build/nbval

book-ci:
	rm -rf _build/ci
	$(BIN)/python -m gridlib export-web
	GRIDLIB_SCALE=ci $(BIN)/jupyter-book build . --all -W -n --keep-going --path-output _build/ci \
	  || { cat _build/ci/_build/html/reports/*.err.log 2>/dev/null; exit 1; }

# Every keyed number (report.quantity) shows one text on every built page of the CI-scale book,
# no page shows a Python object's repr, none signs a number with an ASCII hyphen, no table
# labels a row or column with a metric key or a run's name, and no line breaks between a
# number and its per-cent sign.
consistency:
	test -d _build/ci/_build/html || { echo "error: no built book in _build/ci (make book-ci)"; exit 1; }
	GRIDLIB_BUILT_HTML=_build/ci/_build/html $(BIN)/python -m pytest -q -p no:cacheprovider \
	  tests/test_consistency.py::test_every_page_of_the_built_book_shows_one_text_per_quantity \
	  tests/test_consistency.py::test_no_page_of_the_built_book_shows_a_python_object_repr \
	  tests/test_consistency.py::test_no_page_of_the_built_book_signs_a_number_with_a_hyphen \
	  tests/test_consistency.py::test_no_table_of_the_built_book_labels_a_row_or_column_with_a_raw_key \
	  tests/test_consistency.py::test_no_page_of_the_built_book_breaks_a_number_from_its_percent_sign

# ---- the browser check of the built CI-scale pages -------------------------------------
# Headless Chromium opens every page of _build/ci, at 1280 px and at 390 px (a phone), and fails
# on visible defects: MathJax errors, untypeset or over-wide math, over-wide outputs, code input
# wider than its box, tables cut off instead of scrolling, broken images, errors/warnings and raw
# Markdown in outputs (tests/browser/check_pages.py). Screenshots and a report land in
# _build/ci/_build/browser-check. Without a browser it is skipped, except on CI (CI set in the
# environment, or REQUIRE_BROWSER=1) where it fails.
CHROMIUM           ?= /usr/bin/chromium
BROWSER_CHECK_HTML ?= _build/ci/_build/html
REQUIRE_BROWSER    ?=

# Debian's chromium, installed when missing where that is possible (root and apt-get); and
# Debian's firefox-esr, for the live page's tests in Firefox (tests/test_live_parity.py).
chromium:
	@if [ -x "$(CHROMIUM)" ] || command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing Debian's chromium (for make browser-check)"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -qq chromium >/dev/null 2>&1 \
	  || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } \
	  || echo "warning: could not install chromium; the browser check will be skipped (fail on CI)"; \
	else echo "note: chromium is missing and cannot be installed here (needs root and apt-get)"; fi
	@if command -v firefox-esr >/dev/null 2>&1 || command -v firefox >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing Debian's firefox-esr (for the live page's tests in Firefox)"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -qq firefox-esr >/dev/null 2>&1 \
	  || { apt-get update -qq && apt-get install -y -qq firefox-esr >/dev/null; } \
	  || echo "warning: could not install firefox-esr; the live page's Firefox tests will be skipped"; \
	else echo "note: firefox-esr is missing and cannot be installed here; its tests will be skipped"; fi

browser-check: chromium
	CHROMIUM=$(CHROMIUM) $(BIN)/python tests/browser/check_pages.py $(BROWSER_CHECK_HTML)$(if $(REQUIRE_BROWSER), --require-browser)

# The launch (Binder, Colab) and .ipynb download links of the built chapter pages are the URLs
# that _config.yml's `repository` setting implies (tests/browser/check_links.py; no browser needed).
LINKS_CHECK_HTML ?= _build/ci/_build/html

links-check:
	$(BIN)/python tests/browser/check_links.py $(LINKS_CHECK_HTML)

# ---- run the chapters yourself ---------------------------------------------------------
# JupyterLab with jupytext (the `lab` extra of pyproject.toml, pinned, installed into .venv with
# the lock as constraints) on the repository. jupytext's contents manager serves notebooks/*.md as
# notebooks; the default-viewer setting written into .venv (not your ~/.jupyter) makes a click on
# a chapter open it as one. LAB_ARGS passes options to JupyterLab, e.g.
# make lab LAB_ARGS="--no-browser --port 8899".
LAB_STAMP     := $(VENV)/.installed-lab
LAB_OVERRIDES := $(VENV)/etc/jupyter/labconfig/default_setting_overrides.json
LAB_ARGS      ?=

lab-env: $(LAB_STAMP)

$(LAB_STAMP): $(STAMP) pyproject.toml
	$(BIN)/python -m pip install --quiet -c requirements-lock.txt -e '.[lab]'
	mkdir -p $(dir $(LAB_OVERRIDES))
	printf '%s\n' '{"@jupyterlab/docmanager-extension:plugin": {"defaultViewers":' \
	  '  {"markdown": "Jupytext Notebook", "myst": "Jupytext Notebook"}}}' > $(LAB_OVERRIDES)
	@touch $@

lab: lab-env data
	$(BIN)/jupyter lab --ServerApp.root_dir="$(CURDIR)" $(LAB_ARGS)

bench: env data
	for f in benchmarks/*.py; do $(BIN)/python "$$f" || exit 1; done

clean:
	rm -rf _build runs
