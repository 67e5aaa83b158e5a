# Quire: `make run` serves posts/ on http://127.0.0.1:8000 (`make dev` to write); `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
APT_PACKAGES := chromium nginx wrk default-jre-headless jekyll ruby-jekyll-redirect-from ruby-jekyll-feed

.PHONY: run dev test test-fast bench bench-short check clean system-deps

$(BIN)/python:
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	  echo "python3-venv is missing; installing it with apt-get"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv && \
	  rm -rf $(VENV) && $(PYTHON) -m venv $(VENV); }
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/pip install -q -r requirements.txt
	@touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install -q -r requirements-dev.txt
	@touch $@ $(VENV)/.runtime

run: $(VENV)/.runtime
	$(BIN)/gunicorn -c gunicorn.conf.py wsgi:app

# The author's preview server: drafts shown, problems in the page, the open tab reloads on every change.
dev: $(VENV)/.runtime
	$(BIN)/python -m blog serve --dev

# System packages the browser, proxy and load tests use, installed only where missing.
system-deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

test: $(VENV)/.dev system-deps
	$(BIN)/python -m pytest

test-fast: $(VENV)/.dev
	$(BIN)/python -m pytest -m "not browser and not slow"

check: $(VENV)/.runtime
	$(BIN)/flask --app wsgi blog check

bench: $(VENV)/.dev system-deps
	$(BIN)/python bench/run.py --posts-cache $${TMPDIR:-/tmp}/quire-bench-posts
	$(BIN)/python bench/nginx_bench.py

bench-short: $(VENV)/.dev system-deps
	$(BIN)/python bench/run.py --short
	$(BIN)/python bench/nginx_bench.py --posts 100 --seconds 2 --rounds 1

clean:
	rm -rf $(VENV) .pytest_cache
