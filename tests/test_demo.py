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
    # patients waiting (unless the seed ran after the day's last session).
    board = desk.get("/schedule/").get_data(as_text=True)
    assert "Dr. Vikram Rao" in board or "Dr. Ayesha Khan" in board or "closed" in board
    for offset in range(-2, 5):
        day = (date.today() + timedelta(days=offset)).isoformat()
        html = desk.get(f"/schedule/?day={day}").get_data(as_text=True)
        if "Dr. Ayesha Khan" in html:
            assert "data-card" in html
            break
    else:
        raise AssertionError("no seeded appointments in the demo week")

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
