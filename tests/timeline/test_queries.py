"""A page of the timeline costs the same number of SQL statements whatever the patient's history."""

from contextlib import contextmanager

import pytest
from sqlalchemy import event

from app.auth.policy import Role
from tests.conftest import patient_id, register_with
from tests.timeline.conftest import HTMX, item_ids


@contextmanager
def counting(app):
    """Count the statements the app sends while the block runs."""
    sent: list[str] = []

    def before(conn, cursor, statement, parameters, context, executemany):
        sent.append(statement)

    engine = app.extensions["db_engine"]
    event.listen(engine, "before_cursor_execute", before)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", before)


def _visit(history, patient, doctor_id, encounter_id, step: int) -> None:
    """One event of a kind that turns with `step`: appointment, consultation, vitals, prescription."""
    match step % 4:
        case 0:
            history.appointment(patient, doctor_id)
        case 1:
            history.encounter(patient, doctor_id, assessment="stable", diagnoses=["Hypertension"], signed=False)
        case 2:
            history.vitals(patient, {"systolic": 150, "diastolic": 95}, doctor_id=doctor_id)
        case 3:
            history.prescription(patient, doctor_id, encounter_id, drugs=["Amlodipine"])


@pytest.fixture
def two_patients(desk, history, as_role):
    """A patient with 5 events and one with 300, of the same kinds, both in the care of one doctor."""
    doctor = as_role(Role.DOCTOR, "Dr Care Giver")
    small, big = (patient_id(register_with(desk, consent_treatment=None, full_name=name))
                  for name in ("Asha Small", "Bharat Big"))
    for patient, count in ((small, 5), (big, 300)):
        encounter_id = history.encounter(patient, doctor.person.id, assessment="first visit", signed=False)
        for step in range(2, count):  # with the registration and the first consultation
            _visit(history, patient, doctor.person.id, encounter_id, step)
    return doctor, small, big


def _statements(app, browser, url: str, **kw) -> int:
    browser.get(url, **kw)  # the same request once before, so both are counted in the same state
    with counting(app) as sent:
        response = browser.get(url, **kw)
    assert response.status_code == 200
    return len(sent)


@pytest.mark.parametrize("role", [None, Role.RECEPTION, Role.NURSE])
def test_the_first_page_costs_the_same_for_5_and_300_events(app, two_patients, as_role, sql, role):
    doctor, small, big = two_patients
    browser = doctor if role is None else as_role(role)
    assert sql("SELECT count(*) FROM timeline_event WHERE patient_id = :p", p=big)[0][0] == 300
    kinds = {r[0] for r in sql("SELECT kind FROM (SELECT kind FROM timeline_event WHERE patient_id = :p "
                               "ORDER BY at DESC, id DESC LIMIT 25) s", p=big)}
    assert kinds == {r[0] for r in sql("SELECT DISTINCT kind FROM timeline_event WHERE patient_id = :p", p=small)}
    counts = [_statements(app, browser, f"/patients/{p}/timeline") for p in (small, big, small, big)]
    assert len(set(counts)) == 1, counts
    html = browser.get(f"/patients/{big}/timeline").get_data(as_text=True)
    assert len(item_ids(html)) == 25


def test_a_deep_page_costs_the_same_as_the_second(app, two_patients):
    doctor, _, big = two_patients
    urls = [f"/patients/{big}/timeline"]
    for _ in range(6):  # the addresses of pages 2 to 7, as htmx follows them
        html = doctor.get(urls[-1], headers=HTMX).get_data(as_text=True)
        urls.append(html.split('hx-get="', 1)[1].split('"', 1)[0].replace("&amp;", "&"))
    assert _statements(app, doctor, urls[1], headers=HTMX) == _statements(app, doctor, urls[6], headers=HTMX)
