# `make demo` and `make test` work on a fresh clone: they create .venv, install the project and
# make sure a Chromium is there (scripts/ensure-browser.sh) before doing anything else.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup browser test test-fast faults lint demo demo-hosts serve bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

browser: $(STAMP)
	PY=$(PY) bash scripts/ensure-browser.sh

# Everything, as CI runs it (.ci/run). About 14 minutes on 2 cores: see README, "Development".
test: browser
	$(PY) -m pytest -q

# Everything but the fault-injection suite (SIGKILLs, a full disk, fuzzing, the 60 s soak) and the
# tests marked slow: the quick loop while editing. CI still runs `make test`.
test-fast: browser
	$(PY) -m pytest -q -m "not faults and not slow"

faults: browser
	$(PY) -m pytest -q -m faults

lint: $(STAMP)
	$(VENV)/bin/ruff check .

demo: browser
	PY=$(PY) bash examples/demo.sh

# The README's "Many hosts" on one machine: a nats-server, two workers, a run with --workers.
demo-hosts: browser
	PY=$(PY) bash examples/hosts.sh

# The dashboard on the example tasks (README, "Dashboard and schedules"): prints its URL; Ctrl-C stops it.
serve: browser
	PY=$(PY) bash examples/serve.sh

bench: $(STAMP)
	$(PY) bench/projector.py

clean:
	rm -rf warmup-data .pytest_cache .hypothesis
