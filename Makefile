# ClinicDesk: `make run` serves the demo, `make test` runs every test.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run test lint clean-instance

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

run: $(VENV)/.installed
	$(PY) -m app.local.run

test: $(VENV)/.installed
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports --no-cache
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports --no-cache

clean-instance:
	rm -rf instance

# The benchmarks (bench/), on databases of their own on the DATABASE_URL server, else an embedded PostgreSQL in
# instance/bench. `make bench`: the background figures (reminders sent per second by two RQ workers, bills issued
# and PDFs rendered per second), then the load test (bench/load.py): the 2,000- and 200,000-patient data sets
# (generated once, reused while they match), the app under gunicorn with an RQ worker, an open-loop mix at 50
# arrivals/s on one clinic and spread over all, and the capacity. BENCH_ARGS=--small: the 2,000-patient set only.
# Results: bench/results/{load,billing,reminders}.{md,json}. `make bench-pages`: the in-process page benchmarks.
.PHONY: bench bench-load bench-pages bench-billing bench-reminders
bench: $(VENV)/.installed
	$(PY) -m bench.reminders $(filter --small,$(BENCH_ARGS))
	$(PY) -m bench.billing $(filter --small,$(BENCH_ARGS))
	$(PY) -m bench.load $(BENCH_ARGS)

bench-load: $(VENV)/.installed
	$(PY) -m bench.load $(BENCH_ARGS)

# The day board, its poll, the booking panel's search and booking by 1 and 8 desks, then the timeline's pages,
# measured in process (Flask's test client) with the SQL of each request; see `python -m bench.schedule -h`.
bench-pages: $(VENV)/.installed
	$(PY) -m bench.schedule $(BENCH_ARGS)
	$(PY) -m bench.timeline $(filter-out --fresh,$(BENCH_ARGS))

# Billing: documents issued per second by 8 desks at once (numbers checked consecutive) and PDFs rendered
# per second by one worker, on a `clinicdesk_bench_billing` database rebuilt each run; see `python -m bench.billing -h`.
bench-billing: $(VENV)/.installed
	$(PY) -m bench.billing $(BENCH_ARGS)

# 10,000 due reminders through two RQ workers to the local fake of Twilio: messages per second, duplicates (must
# be 0); on a `clinicdesk_bench_reminders` database rebuilt each run; see `python -m bench.reminders -h`.
bench-reminders: $(VENV)/.installed
	$(PY) -m bench.reminders $(BENCH_ARGS)
