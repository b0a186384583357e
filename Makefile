# Two commands matter: `make run` (the whole stack, in the foreground) and
# `make test` (everything CI checks). Both set themselves up from a fresh clone.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
REQS   := requirements/base.txt requirements/dev.txt requirements/chart.txt
# Example processor packages: installed beside handoff, so their entry points and tests run too.
EXAMPLES := examples/wordcount

.PHONY: run test unit lint bench bench-gc soak system-deps browser-deps requirements \
	vendor-uppy clean

$(STAMP): $(REQS) pyproject.toml $(addsuffix /pyproject.toml,$(EXAMPLES))
	@$(PYTHON) -c "import ensurepip, venv" >/dev/null 2>&1 || $(MAKE) system-deps
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(addprefix -r ,$(REQS))
	$(BIN)/python -m pip install --quiet --no-deps -e . $(addprefix -e ,$(EXAMPLES))
	@touch $@

# System packages: venv support and curl (used by the README examples).
system-deps:
	@if command -v apt-get >/dev/null 2>&1; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			python3-venv curl >/dev/null; \
	else echo "no apt-get: install python3-venv and curl yourself"; fi

# What the browser and Node tests drive: Debian's chromium and its chromedriver, and Node.js
# (which brings npm). Installed only when missing, so a second run costs nothing.
browser-deps:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null \
		&& command -v npm >/dev/null || { \
	if command -v apt-get >/dev/null 2>&1; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			chromium chromium-driver $$(command -v npm >/dev/null || echo nodejs npm) >/dev/null; \
	else echo "no apt-get: install chromium, chromedriver and Node.js with npm yourself"; fi; }

run: $(STAMP)
	$(BIN)/python -m devstack

# The 25 slowest tests are listed at the end, to keep the suite's time in view.
test: lint browser-deps
	$(BIN)/python -m pytest --durations=25

unit: $(STAMP)
	$(BIN)/python -m pytest -m "not integration"

# lint-imports checks the import contracts in pyproject.toml ([tool.importlinter]).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/mypy handoff api_service geo_service gc devstack bench soak $(EXAMPLES)/handoff_wordcount \
		--ignore-missing-imports

bench: $(STAMP)
	$(BIN)/python -m bench
	$(BIN)/python -m bench.slow_clients

# The chaos soak: real stack, faults at random, then a strict check (HANDOFF_SOAK_SECONDS;
# HANDOFF_SOAK_STORE=s3 on an embedded SeaweedFS).
soak: $(STAMP)
	$(BIN)/python -m soak

bench-gc: $(STAMP)
	$(BIN)/python bench/gc_sweep.py

# Re-pin requirements/*.txt after editing the .in files.
requirements: $(STAMP)
	cd requirements && for name in base dev chart; do \
		../$(BIN)/pip-compile --quiet --strip-extras --no-header --no-emit-index-url \
			--no-emit-find-links -o $$name.txt $$name.in; done

# The upload page's Uppy (api_service/static/): the prebuilt browser bundle and its styles,
# with the licence and version, taken from the npm package. Bump the version here, run this.
UPPY   := 6.0.1
STATIC := api_service/static

vendor-uppy:
	tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && cd "$$tmp" \
		&& npm pack --silent uppy@$(UPPY) >/dev/null \
		&& tar xzf uppy-$(UPPY).tgz && cd "$(CURDIR)" \
		&& cp "$$tmp/package/dist/uppy.min.js" "$$tmp/package/dist/uppy.min.css" $(STATIC)/ \
		&& cp "$$tmp/package/LICENSE" $(STATIC)/uppy.LICENSE \
		&& echo $(UPPY) > $(STATIC)/uppy.VERSION

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
