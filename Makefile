# Two commands do all the set-up: `make book` and `make test` (see README.md).
#
#   make book [PROFILE=smoke|quick|full]   install, prepare data, execute every chapter
#                                          with papermill, render HTML in
#                                          _build/site/PROFILE (_build/html links to it)
#   make test                              install, run the test suite
#   make check-site                        build the book and check every page in
#                                          headless Chromium with the network blocked
#   make check-publish                     build smoke, then quick, in a scratch copy and
#                                          check that the quick site shows quick numbers
#   make linkcheck                         check the book's external links (needs network)
#   make bench                             speed benchmarks (ratios, not assertions)
#   make full-results                      the paper-scale run (meant for a GPU): every
#                                          chapter's results and claims -> results/full.json
#   make sync                              write the Colab install cell, re-pair
#                                          every chapter's .md and .ipynb
#
# A virtual environment is created in .venv unless one is active already.

SHELL := /bin/bash
.DEFAULT_GOAL := help
PROFILE ?= quick
PYTHON ?= python3

ifdef VIRTUAL_ENV
VENV := $(VIRTUAL_ENV)
else
VENV := .venv
endif
PY := $(VENV)/bin/python
STAMP := $(VENV)/.prunebounds-installed

CHAPTERS := $(sort $(basename $(notdir $(wildcard notebooks/*.md))))
# `make book` executes JOBS chapters at a time, each kernel with an equal share of the
# cores (after the main network is trained once with all of them); the longest
# chapters are started first. JOBS=1 runs them one by one with every core.
JOBS ?= 2
NPROC := $(shell nproc 2>/dev/null || echo 2)
THREADS := $(shell n=$$(( $(NPROC) / $(JOBS) )); [ $$n -ge 1 ] && echo $$n || echo 1)
LONGEST_FIRST := lottery_tickets beyond_mlps pruning_error sketching reviewers gaussian_weights
CHAPTERS := $(filter $(CHAPTERS),$(LONGEST_FIRST)) $(filter-out $(LONGEST_FIRST),$(CHAPTERS))
SRC := $(shell find src -name '*.py' -not -path '*/__pycache__/*')
EXEC_DIR := _build/executed/$(PROFILE)
EXECUTED := $(CHAPTERS:%=$(EXEC_DIR)/%.ipynb)
# Each profile has its own staging copy and its own Sphinx output (with its own saved
# environment and doctrees): Sphinx keeps a page it thinks unchanged, so two profiles
# rendered into one folder would mix their numbers. _build/html links to the last one.
STAGE := _build/stage/$(PROFILE)
SITE := _build/site/$(PROFILE)
STAMPED := _build/stamped/$(PROFILE)
BOOK_PAGES := $(shell find book -type f -not -path '*/__pycache__/*')

.PHONY: help install data main-network execute book test check-site check-publish linkcheck bench full-results sync clean clean-cache FORCE

help:
	@sed -n '1,18p' Makefile

$(PY):
	$(PYTHON) -m venv $(VENV)

# Reinstall when pyproject.toml's content changes (its digest is rewritten only then).
$(VENV)/.pyproject.sha256: FORCE | $(PY)
	@sha256sum < pyproject.toml > $@.new
	@if cmp -s $@.new $@; then rm $@.new; else mv $@.new $@; fi

$(STAMP): $(VENV)/.pyproject.sha256
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e ".[book,test]"
	touch $@

install: $(STAMP)

# Real data for the quick and full profiles: ../shared/data when present, else download.
data: $(STAMP)
ifneq ($(PROFILE),smoke)
	$(PY) -m prunebounds.data mnist
endif

# An executed chapter is redone only when the CONTENT of its sources, of the package or
# of pyproject.toml changes (a checkout or `touch` that changes only times does not
# count): each chapter has a digest file that is rewritten only when the digest differs.
DIGEST_DIR := _build/digests
$(DIGEST_DIR)/%.sha256: FORCE
	@mkdir -p $(@D)
	@cat notebooks/$*.md notebooks/$*.ipynb $(SRC) pyproject.toml | sha256sum > $@.new
	@if cmp -s $@.new $@; then rm $@.new; else mv $@.new $@; fi

$(EXEC_DIR)/%.ipynb: $(DIGEST_DIR)/%.sha256 | $(STAMP) data main-network
	$(PY) tools/execute_chapters.py --profile $(PROFILE) --out-dir $(EXEC_DIR) notebooks/$*.ipynb --threads $(THREADS)

FORCE:
.PRECIOUS: $(DIGEST_DIR)/%.sha256

execute: $(EXECUTED)

# The network every chapter starts from, trained (or found in the cache) once, with all
# cores, before chapters run side by side. The smoke network takes seconds: skipped.
main-network: | $(STAMP) data
ifneq ($(PROFILE),smoke)
	$(PY) -m prunebounds.runs main-network --profile $(PROFILE)
endif

# Render the executed notebooks (execution off) from a staging copy of the book, so
# that tracked files are never modified. Warnings fail the build.
# results/ (the paper-scale results of a GPU run, results/full.json) is staged too: the
# scorecard shows them beside this build's numbers.
book: $(BOOK_PAGES) _config.yml _toc.yml | $(STAMP)
	$(MAKE) --no-print-directory -j$(JOBS) execute PROFILE=$(PROFILE)
	rm -rf $(STAGE) && mkdir -p $(STAGE)/notebooks
	cp -p _config.yml _toc.yml $(STAGE)/
	cp -rp book $(STAGE)/book
	if [ -d results ]; then cp -rp results $(STAGE)/results; fi
	ln -s $(CURDIR)/src $(STAGE)/src
	# The executed chapters and their text sources (for download), with the Colab install
	# cell stamped with this commit; a stamped copy is rewritten only when its content
	# changes, so that a warm build does not make Sphinx read every chapter again.
	$(PY) tools/stamp_install_cell.py --ref HEAD --out-dir $(STAMPED) $(EXECUTED) \
	  $(CHAPTERS:%=notebooks/%.md)
	cp -p $(CHAPTERS:%=$(STAMPED)/%.ipynb) $(CHAPTERS:%=$(STAMPED)/%.md) $(STAGE)/notebooks/
	$(VENV)/bin/jupyter-book build $(STAGE) --path-output $(SITE) -W -n --keep-going
	rm -rf _build/html && ln -s site/$(PROFILE)/_build/html _build/html
	@echo "The book is in _build/html/index.html (profile $(PROFILE); also $(SITE)/_build/html)."

test: $(STAMP)
	$(PY) -m pytest

# Installs Debian's Chromium when it is missing (needs root), then checks the built book.
check-site: $(STAMP)
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && \
	  apt-get install -y -qq chromium; } || { echo "install Chromium (Debian: apt-get install chromium)"; exit 1; }
	$(MAKE) book PROFILE=$(PROFILE)
	PRUNEBOUNDS_SITE=_build/html $(PY) -m pytest -q tests/test_site.py
	@echo "Screenshots of every page: _build/screenshots/"

# Two profiles built one after the other in a scratch copy of the checkout: every number
# the quick site shows from a claim record is the quick chapter's (about 15 min on 2 cores).
check-publish: $(STAMP)
	$(PY) -m pytest -q -m publish tests/test_publish.py

# External links of the rendered book (smoke profile: the pages are the same).
linkcheck: $(STAMP)
	$(MAKE) book PROFILE=smoke
	$(VENV)/bin/jupyter-book build _build/stage/smoke --path-output _build/linkcheck --builder linkcheck

bench: $(STAMP) data
	$(PY) benchmarks/train_throughput.py
	$(PY) benchmarks/sketch_recovery.py --quick
	$(PY) benchmarks/bounds_sweep.py

# The paper-scale results shown in the scorecard's "paper scale" column: the full
# profile's main network once, then every chapter's compute and claims side by side, no
# notebooks (`python -m prunebounds.chapters full-results --help`). Minutes on one GPU.
full-results: $(STAMP) data
	$(PY) -m prunebounds.chapters full-results --profile full --out results/full.json

sync: $(STAMP)
	$(PY) tools/stamp_install_cell.py notebooks/*.md
	$(VENV)/bin/jupytext --sync notebooks/*.md

clean:
	rm -rf _build

clean-cache:
	rm -rf _cache
