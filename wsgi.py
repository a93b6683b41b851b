"""WSGI entry point: `gunicorn wsgi:app`, `flask --app wsgi ...`."""

import gc

from app import create_app

app = create_app()

# What the app built at start-up (SQLAlchemy's mappers, compiled templates, the route map) lives as long
# as the process: freeze it out of the garbage collector's sight, and collect the young generation less
# often. A day board allocates some hundred thousand short-lived objects; with the defaults, the
# collector's full passes over every long-lived object cost about a third of the request (bench/load.py).
gc.collect()
gc.freeze()
gc.set_threshold(10_000, 20, 20)
