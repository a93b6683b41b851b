"""The benchmark's report: the machine, the table, and where the time of a board request and a booking goes."""

import json
import platform
import re
import sys
from datetime import UTC, datetime
from pathlib import Path

from psycopg import sql

from bench import data, env

RESULTS = Path(__file__).resolve().parent / "results"


def machine(bench: env.Bench) -> dict:
    """The CPU, memory, PostgreSQL and its settings, and how big the data is."""
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")),
                 platform.processor())
    mem = Path("/proc/meminfo").read_text().split()[1] if Path("/proc/meminfo").exists() else "0"
    with bench.owner() as conn:
        settings = {name: conn.execute(f"SHOW {name}").fetchone()[0] for name in
                    ("server_version", "shared_buffers", "work_mem", "effective_cache_size", "max_connections",
                     "synchronous_commit", "jit")}
        size = conn.execute("SELECT pg_size_pretty(pg_database_size(current_database()))").fetchone()[0]
        rows = {t: conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(t))).fetchone()[0]
                for t in (*data.TABLES, "clinic", "staff_user", "audit_event")}
    return {"cpu_model": model, "cpus": len(re.findall(r"^processor", cpuinfo, re.M)) or None,
            "ram_gib": round(int(mem) / 1024 / 1024, 1), "python": platform.python_version(),
            "postgresql": settings, "database_size": size, "rows": rows}


def table(results: list[dict]) -> str:
    lines = ["| measure | n | p50 ms | p95 ms | p99 ms | SQL statements | SQL ms (p50) | KB (p50) | answers |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in results:
        queries = f"{r['queries_min']}" if r["queries_min"] == r["queries_max"] else \
            f"{r['queries_min']}-{r['queries_max']}"
        answers = ", ".join(f"{v} x {k}" for k, v in sorted(r["statuses"].items()))
        lines.append(f"| {r['name']} | {r['n']} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | {r['p99_ms']:.1f} "
                     f"| {queries} | {r['sql_ms_p50']:.1f} | {r['bytes_p50'] / 1024:.0f} | {answers} |")
    return "\n".join(lines)


def booking_lines(results: list[dict]) -> str:
    return "\n".join(
        f"- {r['clients']} desk{'s' if r['clients'] > 1 else ''}: {r['booked']} booked (303) and "
        f"{r['refused_409']} refused (409) of "
        f"{r['n']} attempts ({r['twins']} deliberate second attempts at a taken slot, {r['twins_in_flight_together']}"
        f" of them in flight together with the first) in {r['wall_s']:.1f} s: {r['bookings_per_s']:.1f} "
        f"bookings/s, {r['attempts_per_s']:.1f} attempts/s; afterwards {r['overlapping_pairs']} overlapping pairs"
        for r in results if "clients" in r)


def text(meta: dict, info: dict, results: list[dict], plans: list[dict], board_info: dict) -> str:
    """The report as Markdown: what was measured on what, the table, and the slowest statements."""
    rows = info["rows"]
    head = (f"ClinicDesk schedule benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC\n\n"
            f"Data: {rows['patient']:,} patients, {rows['appointment']:,} appointments "
            f"({rows['appointment_event']:,} appointment events, {rows['patient_token']:,} search tokens) in "
            f"{rows['clinic']} clinics; database {info['database_size']}; generated {meta['anchor']} in "
            f"{meta['load_s']} s.\n"
            f"Board: {board_info['day']}, {board_info['appointments']} appointments, {board_info['doctors']} doctors.\n"
            f"Machine: {info['cpu_model']}, {info['cpus']} CPUs, {info['ram_gib']} GiB RAM; PostgreSQL "
            f"{info['postgresql']['server_version']} (shared_buffers {info['postgresql']['shared_buffers']}); "
            f"Python {info['python']}; app in-process (Flask test client), one desk per thread.\n\n"
            "Each request is served whole: session, tenant, permission, the audit record, the commit. Booking is "
            "POST /schedule/book as the form sends it (303 booked, 409 slot taken). SQL ms is the time inside the "
            "database driver as the app sees it (with several desks it includes waiting for the interpreter lock). "
            "KB is the uncompressed response.\n")
    slow = "\n".join(f"- {p['ms']:.2f} ms{' SEQ SCAN ' + ','.join(p['seq_scan']) if p['seq_scan'] else ''}: "
                     f"{p['summary']}" for p in plans[:6])
    booking = next((r for r in results if r.get("statements")), None)
    sent = "\n".join(f"- {s['ms']:.2f} ms: {s['sql'][:150]}" for s in
                     sorted(booking["statements"], key=lambda s: -s["ms"])[:6]) if booking else ""
    return f"{head}\n{table(results)}\n\nBooking under load:\n{booking_lines(results)}\n\n" \
           f"Slowest statements of one board request (EXPLAIN ANALYZE as the app role):\n{slow}\n\n" \
           f"Slowest of the {len(booking['statements']) if booking else 0} statements of one booking " \
           f"(as timed by the app; COMMIT not included):\n{sent}\n"


def write(markdown: str, report_data: dict, name: str = "schedule") -> None:
    """bench/results/<name>.md and <name>.json (machine-specific; not committed)."""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(report_data, indent=2, default=str))
    (RESULTS / f"{name}.md").write_text(markdown)
    print(f"written: {RESULTS / f'{name}.json'}, {RESULTS / f'{name}.md'}", file=sys.stderr)
