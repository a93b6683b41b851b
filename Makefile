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
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(PY) -m ruff check .

clean-instance:
	rm -rf instance

# The benchmarks (bench/), the schedule's then the timeline's: against a `clinicdesk_bench` database on the
# DATABASE_URL server, else an embedded PostgreSQL in instance/bench. BENCH_ARGS=--small for a quick run; see
# `python -m bench.schedule -h` and `python -m bench.timeline -h`.
.PHONY: bench bench-billing bench-reminders
bench: $(VENV)/.installed
	$(PY) -m bench.schedule $(BENCH_ARGS)
	$(PY) -m bench.timeline $(filter-out --fresh,$(BENCH_ARGS))
	$(PY) -m bench.billing $(filter-out --fresh,$(BENCH_ARGS))
	$(PY) -m bench.reminders $(filter-out --fresh,$(BENCH_ARGS))

# Billing: documents issued per second by 8 desks at once (numbers checked consecutive) and PDFs rendered
# per second by one worker, on a `clinicdesk_bench_billing` database rebuilt each run; see `python -m bench.billing -h`.
bench-billing: $(VENV)/.installed
	$(PY) -m bench.billing $(BENCH_ARGS)

# 10,000 due reminders through two RQ workers to the local fake of Twilio: messages per second, duplicates (must
# be 0); on a `clinicdesk_bench_reminders` database rebuilt each run; see `python -m bench.reminders -h`.
bench-reminders: $(VENV)/.installed
	$(PY) -m bench.reminders $(BENCH_ARGS)
