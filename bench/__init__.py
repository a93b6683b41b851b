"""Benchmarks on a realistically sized database (`make bench`).

env.py       where it runs: its own database and secrets, the app configured for it
data.py      the generator: plan.py (how much of what, when), clinics.py (set-up through the app),
             patients.py and visits.py (the bulk rows), names.py (who the patients are)
schedule.py  the schedule benchmark, with measure.py (desks, SQL counting), explain.py and report.py
"""
