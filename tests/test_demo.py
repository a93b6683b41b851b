"""The demo: seeded clinics and staff whose printed credentials really sign in."""

import json
import os
import stat
from datetime import date, timedelta
from pathlib import Path

from app.demo.cli import demo_users, seed_demo


def test_demo_users_json_lists_every_role_and_signs_in(app, browser, new_browser, sql):
    runner = app.test_cli_runner()
    assert "seeded 2 clinics" in runner.invoke(seed_demo).output
    result = runner.invoke(demo_users, ["--json"])
    assert result.exit_code == 0, result.output
    people = json.loads(result.output)
    assert {p["role"] for p in people} == {"admin", "doctor", "nurse", "reception", "billing", "auditor"}
    assert all(set(p) == {"email", "password", "role", "clinic", "totp_secret"} for p in people)
    doctor_clinics = {p["clinic"] for p in people if p["role"] == "doctor"}
    assert doctor_clinics == {"Indiranagar Family Clinic", "Kothrud Health Centre"}

    credentials = Path(app.instance_path) / "demo-credentials.json"
    assert stat.S_IMODE(os.stat(credentials).st_mode) == 0o600

    from tests.conftest import Person

    class Demo(Person):
        def __init__(self, p):
            self.email, self.password, self.secret = p["email"], p["password"], p["totp_secret"]

    auditor = Demo(next(p for p in people if p["role"] == "auditor"))
    browser.sign_in(auditor)
    assert "Lakshmi Iyer" in browser.get("/").get_data(as_text=True)
    assert "seed skipped" in runner.invoke(seed_demo).output

    reception = Demo(next(p for p in people if p["email"] == "reception@demo.clinicdesk.in"))
    desk = new_browser()
    desk.sign_in(reception)
    desk.get("/patients/")
    family = desk.post("/patients/search", {"q": "98450 12301"}).get_data(as_text=True)
    assert "Lakshmi Narayanan" in family and "Venkatesh Narayanan" in family  # a shared family phone
    assert "Sunita Deshpande" not in desk.post("/patients/search", {"q": "sunita"}).get_data(as_text=True)

    # A week of appointments: today's board has both doctors, booked cards and free slots; the queue has
    # patients waiting (unless the seed ran after the day's last session). On a Sunday the clinic opens
    # for the morning but no doctor has a session, and the board says so.
    board = desk.get("/schedule/").get_data(as_text=True)
    assert "Dr. Vikram Rao" in board or "Dr. Ayesha Khan" in board or "closed" in board \
        or "No doctor is scheduled on this day" in board
    boards = [desk.get(f"/schedule/?day={date.today() + timedelta(days=offset)}").get_data(as_text=True)
              for offset in range(-2, 8)]  # the machine's date may be the clinic's yesterday
    assert any("Dr. Ayesha Khan" in html and "data-card" in html for html in boards), \
        "no seeded appointments in the demo week"

    # The visits already done have their clinical record: the doctor reads a signed note and its
    # prescription; the receptionist's page of the same patient shows none of it.
    doctor = Demo(next(p for p in people if p["email"] == "doctor@demo.clinicdesk.in"))
    room = new_browser()
    room.sign_in(doctor)
    encounter, patient = sql("SELECT e.id, e.patient_id FROM encounter e JOIN prescription p ON p.encounter_id = e.id "
                             "JOIN clinic c ON c.id = e.clinic_id WHERE e.doctor_id = :d AND e.status = 'signed' "
                             "AND p.status = 'signed' AND c.name = 'Indiranagar Family Clinic' LIMIT 1",
                             d=doctor_id(sql))[0]
    note = room.get(f"/encounters/{encounter}")
    assert note.status_code == 200 and "Assessment" in note.get_data(as_text=True)
    assert "Prescription" in note.get_data(as_text=True)
    assert "Assessment" not in desk.get(f"/patients/{patient}").get_data(as_text=True)


def doctor_id(sql):
    return sql("SELECT id FROM staff_user WHERE email = 'doctor@demo.clinicdesk.in'")[0][0]


def test_demo_users_refuses_on_a_non_demo_database(app, factory):
    factory.person(factory.clinic())
    result = app.test_cli_runner().invoke(demo_users, ["--json"])
    assert result.exit_code != 0
    assert "not a demo database" in result.output


def test_demo_bills_its_completed_visits_through_the_billing_services(app, new_browser, sql):
    """Each clinic is GST-ready with a valid GSTIN; its visits are billed with consecutive numbers per
    series, paid (some in part), and one medicine return and one cancellation are on record."""
    import re
    from collections import defaultdict

    from app.clinics.states import is_valid_gstin

    runner = app.test_cli_runner()
    assert "seeded 2 clinics" in runner.invoke(seed_demo).output
    clinics = sql("SELECT c.id, c.gstin, c.state_code, p.signatory_name FROM clinic c "
                  "JOIN billing_profile p ON p.clinic_id = c.id")
    assert len(clinics) == 2
    for clinic_id, gstin, state, signatory in clinics:
        assert is_valid_gstin(gstin) and gstin[:2] == state and signatory
        assert sql("SELECT count(*) FROM appointment_type t WHERE t.clinic_id = :c AND NOT EXISTS "
                   "(SELECT 1 FROM price_item i WHERE i.clinic_id = t.clinic_id AND i.code = t.billable_item)",
                   c=clinic_id)[0][0] == 0
        rates = sql("SELECT r.effective_from, r.rate FROM price_rate r JOIN price_item i ON i.id = r.item_id "
                    "AND i.clinic_id = r.clinic_id WHERE i.clinic_id = :c AND i.hsn_sac = '3005' "
                    "ORDER BY r.effective_from", c=clinic_id)
        assert [(str(d), str(r)) for d, r in rates] == [("2017-07-01", "12.00"), ("2025-09-22", "5.00")]

        documents = sql("SELECT number, kind, appointment_id, cancelled_at FROM bill WHERE clinic_id = :c "
                        "AND status = 'issued'", c=clinic_id)
        assert len(documents) >= 5
        series = defaultdict(list)
        for number, *_ in documents:
            prefix, year, n = number.split("/")
            series[(prefix, year)].append(int(n))
        for numbers in series.values():
            assert sorted(numbers) == list(range(1, len(numbers) + 1))  # no gap, no duplicate
        assert {prefix for prefix, _ in series} >= {"INV", "BOS", "CN"}
        assert sum(1 for *_, cancelled in documents if cancelled) == 1
        assert sql("SELECT count(*) FROM bill WHERE clinic_id = :c AND kind = 'credit_note' "
                   "AND credit_reason = 'return'", c=clinic_id)[0][0] == 1
        assert sql("SELECT count(*) FROM bill_pdf WHERE clinic_id = :c", c=clinic_id)[0][0] == len(documents)

        modes = dict(sql("SELECT mode, count(*) FROM payment WHERE clinic_id = :c AND kind = 'payment' "
                         "GROUP BY mode", c=clinic_id))
        assert set(modes) == {"cash", "upi", "card"}
        assert all(re.fullmatch(r"\d{12}", ref) for (ref,) in sql(
            "SELECT reference FROM payment WHERE clinic_id = :c AND mode = 'upi'", c=clinic_id))
        receipts = sorted(int(n.split("/")[2]) for (n,) in sql(
            "SELECT receipt_number FROM payment WHERE clinic_id = :c", c=clinic_id))
        assert receipts == list(range(1, len(receipts) + 1))
        open_balances = sql(
            "SELECT count(*) FROM bill b WHERE b.clinic_id = :c AND b.status = 'issued' AND b.kind <> 'credit_note' "
            "AND b.cancelled_at IS NULL AND b.rounded_total > (SELECT coalesce(sum(amount), 0) FROM payment p "
            "WHERE p.clinic_id = b.clinic_id AND p.bill_id = b.id AND p.kind = 'payment')", c=clinic_id)[0][0]
        assert open_balances >= 1
        events = sql("SELECT count(*) FROM timeline_event WHERE clinic_id = :c AND kind = 'invoice'", c=clinic_id)
        assert events[0][0] == len(documents)
