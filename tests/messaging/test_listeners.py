"""Messaging follows the schedule through scheduling's signals: the app and the worker connect its listeners
when they start, in a process that has imported nothing else (as `flask`, gunicorn and `python -m jobs.worker`
start)."""

import json
import subprocess
import sys

from tests.conftest import ROOT, worker_env

CHECK = """
import json
from jobs.worker import flask_app
flask_app()
from app.scheduling import signals
names = {s.name: sorted(f"{r.__module__}.{r.__name__}" for r in s.receivers_for(None)) for s in (
    signals.appointment_booked, signals.appointment_moved, signals.appointment_status_changed)}
print(json.dumps(names))
"""


def test_the_worker_app_connects_messaging_to_every_schedule_signal(app_config):
    result = subprocess.run([sys.executable, "-c", CHECK], cwd=ROOT, env=worker_env(app_config), capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {
        "appointment-booked": ["app.messaging.outbox.booked"],
        "appointment-moved": ["app.messaging.outbox.moved"],
        "appointment-status-changed": ["app.messaging.outbox.status_changed"],
    }
