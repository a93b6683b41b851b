"""The load test (bench/load.py) at a tiny size against the test database, so it cannot rot: the app runs
as in production (gunicorn, an RQ worker: bench/server.py), staff of two clinics sign in with password and
TOTP over HTTP, every action of the mix works once (the tour), and a short open-loop phase reports every
page it drove with its SQL statements (Server-Timing) and no error."""

import asyncio
from argparse import Namespace
from pathlib import Path

from bench import data, env, load, server
from bench.data import Size

SIZE = Size(patients=12000, appointments=3000, day_appointments=200)  # patients free to book in every clinic


def test_the_load_test_drives_the_mix_against_gunicorn(app, admin_url, app_config, sql):
    meta = data.generate(app, admin_url, SIZE, workers=1, log=lambda *_: None)
    bench = env.Bench(admin_url, app_config, Path(app_config["INSTANCE_PATH"]))
    args = Namespace(rate=12, duration=3, scenarios="one,spread", capacity="", step=1, clinics=2)
    audit_before = sql("SELECT coalesce(max(seq), 0) FROM audit_event")[0][0]
    with server.running(app_config, workers=1, threads=4, rq_workers=1) as running:
        found = asyncio.run(load.drive(app, bench, meta, args, running, log=lambda *_: None))

    toured = {s["page"] for s in found["tour"]}
    assert toured >= set(load.PAGES) - {"check-in", "walk-in"}, "the tour makes every request of the mix"
    assert toured & {"check-in", "walk-in"}
    assert all(s["ok"] and s["statements"] > 0 for s in found["tour"]), found["tour"]
    for name in ("one", "spread"):
        phase = found["scenarios"][name]
        assert phase["requests"] >= phase["arrivals"] > 0
        assert phase["all"]["errors"] == 0, phase["failures"]
        assert phase["all"]["sql_median"] > 0 and not phase["unfinished"]
        assert phase["client_cpu_pct"] > 0 and phase["server_cpu_pct"] > 0
    assert sql("SELECT coalesce(max(seq), 0) FROM audit_event")[0][0] > audit_before  # PHI reads were audited
    assert sql("SELECT count(*) FROM bill WHERE status = 'issued'")[0][0] >= 1  # the tour issued a bill
