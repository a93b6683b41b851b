"""Where a request's time goes: EXPLAIN ANALYZE of the statements it sent (as the app role, tenant set, so
row-level security is in the plan), and an optional Python profile of the request."""

import cProfile
import io
import pstats
import re
from datetime import date

from bench import clinics, env

BIG_TABLES = {"patient", "patient_token", "patient_history", "consent_event", "appointment", "appointment_event",
              "audit_event", "user_session", "auth_event"}


def board_facts(bench: env.Bench, day: date) -> dict:
    """What the big clinic's board shows on the day: appointments and doctors."""
    with bench.owner() as conn:
        clinic_id = conn.execute("SELECT id FROM clinic WHERE name = %s", [clinics.SPECS[0].name]).fetchone()[0]
        count, doctors = conn.execute("SELECT count(*), count(DISTINCT doctor_id) FROM appointment "
                                      "WHERE clinic_id = %s AND day = %s", [clinic_id, day]).fetchone()
    return {"day": day.isoformat(), "appointments": count, "doctors": doctors, "clinic_id": str(clinic_id)}


def _tenant(bench: env.Bench) -> tuple[str, str]:
    spec = clinics.SPECS[0]
    with bench.owner() as conn:
        clinic_id = conn.execute("SELECT id FROM clinic WHERE name = %s", [spec.name]).fetchone()[0]
        user_id = conn.execute("SELECT id FROM staff_user WHERE email = %s",
                               [clinics.email("desk", spec, 1)]).fetchone()[0]
    return str(clinic_id), str(user_id)


def plans(app, bench: env.Bench, statements: list[dict]) -> list[dict]:
    """EXPLAIN (ANALYZE, BUFFERS) of each SELECT a request sent (as recorded by the SQL counter), slowest
    first."""
    clinic_id, user_id = _tenant(bench)
    out = []
    with app.extensions["db_engine"].connect() as conn:
        for sent in statements:
            statement, parameters = sent["sql"], sent["params"]
            if not statement.lstrip().upper().startswith("SELECT") or "set_config" in statement:
                continue
            with conn.begin() as transaction:
                conn.exec_driver_sql("SELECT set_config('app.clinic_id', %(c)s, true), "
                                     "set_config('app.user_id', %(u)s, true)", {"c": clinic_id, "u": user_id})
                lines = [r[0] for r in conn.exec_driver_sql(f"EXPLAIN (ANALYZE, BUFFERS) {statement}", parameters)]
                transaction.rollback()
            plan = "\n".join(lines)
            took = re.search(r"Execution Time: ([\d.]+) ms", plan)
            scanned = sorted(set(re.findall(r"Seq Scan on (\w+)", plan)) & BIG_TABLES)
            out.append({"ms": float(took.group(1)) if took else 0.0, "seq_scan": scanned,
                        "summary": " ".join(statement.split())[:160], "statement": statement, "plan": plan})
    return sorted(out, key=lambda p: -p["ms"])


def profile(client, url: str, requests: int = 20) -> str:
    """Profile `requests` GETs of `url`; prints and returns the top functions by own time."""
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(requests):
        client.get(url).get_data()
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(25)
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(40)
    print(out.getvalue())
    return out.getvalue()
