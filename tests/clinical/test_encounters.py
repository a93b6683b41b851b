"""Consultations: opened from the doctor's queue, the SOAP note with autosave and stale-save refusal,
diagnoses with ICD-10, follow-up, signing (locks the note and completes the visit), addenda,
the note's revisions, the care relationship and break-the-glass with its time box."""

import re
from datetime import timedelta

import pytest
import sqlalchemy

from app.auth.policy import Role
from tests.conftest import patient_id

# ruff: noqa: F811 (the scheduling fixtures are imported to be used as fixtures)
from tests.scheduling.conftest import HTMX, audit_since, doctor, high_water, setup, sign_in, today  # noqa: F401

NOTE = {"subjective": "Cough for 3 days", "objective": "Chest clear", "assessment": "Viral URTI",
        "plan": "Steam, fluids"}


@pytest.fixture
def doctor_browser(new_browser, doctor):
    browser = new_browser()
    browser.sign_in(doctor)
    return browser


@pytest.fixture
def seen(desk, setup, register, doctor_browser, sql):
    """A walk-in the doctor has called in from their queue: (patient id, encounter id)."""
    patient = patient_id(register(full_name="Kavya Iyer"))
    desk.post("/queue/walk-in", {"patient_id": patient, "doctor_id": str(setup.doctor_id), "type_id": "",
                                 "reason": "", "intent": "add"}, page="/queue/walk-in")
    response = doctor_browser.post(f"/queue/{setup.doctor_id}/next", {"mine": "1", "token": "1"}, page="/queue/mine")
    assert response.status_code == 303
    encounter = re.search(r"/encounters/([0-9a-f-]{36})$", response.headers["Location"]).group(1)
    return patient, encounter


def save(browser, encounter, version, htmx=True, **sections):
    data = {**NOTE, **sections, "version": str(version)}
    return browser.post(f"/encounters/{encounter}/note", data, page=f"/encounters/{encounter}",
                        headers=HTMX if htmx else {})


def test_calling_the_next_patient_opens_the_consultation(seen, doctor_browser, sql):
    patient, encounter = seen
    assert sql("SELECT status FROM appointment") == [("in_consultation",)]
    assert sql("SELECT status, patient_id::text FROM encounter") == [("open", patient)]
    page = doctor_browser.get(f"/encounters/{encounter}").get_data(as_text=True)
    assert "Kavya Iyer" in page and 'data-autosave' in page and "Sign and complete visit" in page
    assert sql("SELECT kind, action FROM timeline_event WHERE kind = 'encounter'") == [("encounter", "opened")]


def test_autosave_keeps_every_revision_and_refuses_a_stale_save(seen, doctor_browser, sql):
    _, encounter = seen
    first = save(doctor_browser, encounter, 1)
    body = first.get_data(as_text=True)
    assert first.status_code == 200 and "Saved at" in body and 'value="2" hx-swap-oob="true"' in body
    assert "<html" not in body
    assert save(doctor_browser, encounter, 2, plan="Steam, fluids, paracetamol").status_code == 200
    stale = save(doctor_browser, encounter, 2, plan="Something else")
    assert stale.status_code == 409 and "another window" in stale.get_data(as_text=True)
    assert sql("SELECT version, changed FROM encounter_revision ORDER BY version") == [
        (2, "subjective,objective,assessment,plan"), (3, "plan")]
    # Sealed: no note text in the database in the clear.
    assert sql("SELECT count(*) FROM encounter WHERE position('paracetamol'::bytea IN plan_enc) > 0") == [(0,)]
    history = doctor_browser.get(f"/encounters/{encounter}/revisions").get_data(as_text=True)
    assert "Steam, fluids, paracetamol" in history and "Version 3" in history


def test_a_diagnosis_or_follow_up_added_meanwhile_does_not_block_the_note(seen, doctor_browser, sql):
    _, encounter = seen
    page = f"/encounters/{encounter}"
    assert save(doctor_browser, encounter, 1).status_code == 200  # now version 2
    doctor_browser.post(f"{page}/diagnoses", {"text": "Hypertension", "code": "I10"}, page=page, headers=HTMX)
    doctor_browser.post(f"{page}/follow-up", {"after_days": "7"}, page=page, headers=HTMX)
    # The note form still holds version 2: its text was not changed since, so the save goes through.
    later = save(doctor_browser, encounter, 2, plan="Amlodipine 5 mg")
    assert later.status_code == 200 and "Saved at" in later.get_data(as_text=True)
    signed = doctor_browser.post(f"{page}/sign", {**NOTE, "plan": "Amlodipine 5 mg", "version": "5"}, page=page,
                                 headers=HTMX)
    assert signed.status_code == 204
    assert sql("SELECT status FROM encounter") == [("signed",)]


def test_save_without_javascript_redirects_back(seen, doctor_browser):
    _, encounter = seen
    response = save(doctor_browser, encounter, 1, htmx=False)
    assert response.status_code == 303 and response.headers["Location"] == f"/encounters/{encounter}"
    assert "Viral URTI" in doctor_browser.get(f"/encounters/{encounter}").get_data(as_text=True)


def test_diagnoses_take_icd10_codes(seen, doctor_browser, sql):
    _, encounter = seen
    page = f"/encounters/{encounter}"
    added = doctor_browser.post(f"{page}/diagnoses", {"text": "", "code": "j069"}, page=page, headers=HTMX)
    assert added.status_code == 200 and "Acute upper respiratory infection, unspecified" in added.get_data(as_text=True)
    assert ">J06.9<" in added.get_data(as_text=True)
    wrong = doctor_browser.post(f"{page}/diagnoses", {"text": "Flu", "code": "ZZ99"}, page=page, headers=HTMX)
    assert wrong.status_code == 422 and "is not an ICD-10 code" in wrong.get_data(as_text=True)
    assert 'value="Flu"' in wrong.get_data(as_text=True)
    plain = doctor_browser.post(f"{page}/diagnoses", {"text": "Flu", "code": "ZZ99"}, page=page)
    assert plain.status_code == 422 and "<html" in plain.get_data(as_text=True)
    doctor_browser.post(f"{page}/diagnoses", {"text": "Hypertension", "code": "I10"}, page=page)
    stale = doctor_browser.post(f"{page}/diagnoses/remove", {"index": "0", "text": "Flu", "code": ""}, page=page)
    assert stale.status_code == 422 and "changed meanwhile" in stale.get_data(as_text=True)
    shown = {"index": "0", "code": "J06.9", "text": "Acute upper respiratory infection, unspecified"}
    removed = doctor_browser.post(f"{page}/diagnoses/remove", shown, page=page)
    assert removed.status_code == 303
    final = doctor_browser.get(page).get_data(as_text=True)
    assert "Hypertension" in final and ">J06.9<" not in final
    assert sql("SELECT count(*) FROM encounter_revision") == [(3,)]


def test_follow_up_offers_to_book(seen, doctor_browser):
    _, encounter = seen
    page = f"/encounters/{encounter}"
    past = doctor_browser.post(f"{page}/follow-up", {"day": today().isoformat()}, page=page, headers=HTMX)
    assert past.status_code == 422 and "must be after today" in past.get_data(as_text=True)
    week = doctor_browser.post(f"{page}/follow-up", {"after_days": "7"}, page=page, headers=HTMX)
    day = today() + timedelta(days=7)
    body = week.get_data(as_text=True)
    assert week.status_code == 200 and "Book the follow-up" in body and f"day={day.isoformat()}" in body


def test_signing_locks_the_note_completes_the_visit_and_takes_addenda(seen, doctor_browser, sql, owner_engine):
    _, encounter = seen
    page = f"/encounters/{encounter}"
    empty = doctor_browser.post(f"{page}/sign", {"version": "1", **dict.fromkeys(NOTE, "")}, page=page, headers=HTMX)
    assert empty.status_code == 422 and "The note is empty" in empty.get_data(as_text=True)
    signed = doctor_browser.post(f"{page}/sign", {**NOTE, "version": "1"}, page=page, headers=HTMX)
    assert signed.status_code == 204 and signed.headers["HX-Redirect"] == "/queue/mine"
    assert sql("SELECT status FROM encounter") == [("signed",)]
    assert sql("SELECT status FROM appointment") == [("completed",)]
    refused = save(doctor_browser, encounter, 3)
    assert refused.status_code == 422 and "signed" in refused.get_data(as_text=True)
    with pytest.raises(sqlalchemy.exc.DBAPIError, match="locked"), owner_engine.begin() as conn:
        conn.execute(sqlalchemy.text("UPDATE encounter SET follow_up_on = current_date + 3"))
    added = doctor_browser.post(f"{page}/addenda", {"text": "BP recheck was 130/84"}, page=page, headers=HTMX)
    assert added.status_code == 200 and "BP recheck was 130/84" in added.get_data(as_text=True)
    assert doctor_browser.post(f"{page}/addenda", {"text": " "}, page=page, headers=HTMX).status_code == 422
    with pytest.raises(sqlalchemy.exc.DBAPIError, match="never deleted"), owner_engine.begin() as conn:
        conn.execute(sqlalchemy.text("DELETE FROM encounter_addendum"))
    read = doctor_browser.get(page).get_data(as_text=True)
    assert "Viral URTI" in read and "data-autosave" not in read and "Signed" in read
    assert sql("SELECT action FROM timeline_event WHERE kind = 'encounter' ORDER BY at") == [
        ("opened",), ("signed",), ("addendum",)]


def test_another_doctor_needs_to_break_the_glass_which_expires(seen, factory, clinic, new_browser, sql):
    patient, encounter = seen
    other = new_browser()
    other.sign_in(factory.person(clinic, Role.DOCTOR, name="Dr Other"))
    mark = high_water(sql)
    refused = other.get(f"/encounters/{encounter}")
    assert refused.status_code == 403 and "Break the glass" in refused.get_data(as_text=True)
    short = other.post(f"/patients/{patient}/break-glass", {"reason": "need", "next": f"/encounters/{encounter}"},
                       page=f"/encounters/{encounter}")
    assert short.status_code == 422 and "at least 10 characters" in short.get_data(as_text=True)
    opened = other.post(f"/patients/{patient}/break-glass",
                        {"reason": "Patient collapsed in the waiting room", "next": f"/encounters/{encounter}"},
                        page=f"/encounters/{encounter}")
    assert opened.status_code == 303 and opened.headers["Location"] == f"/encounters/{encounter}"
    assert other.get(f"/encounters/{encounter}").status_code == 200
    trail = audit_since(sql, mark)
    assert ("encounter.view", "denied") in [(a, o) for a, o, *_ in trail]
    assert [(a, f) for a, _o, _p, _ps, _r, f in trail if a in ("break_glass.open", "encounter.view")][-2:] == [
        ("break_glass.open", True), ("encounter.view", True)]
    # Writing in another doctor's consultation stays refused even with the glass broken.
    assert save(other, encounter, 1).status_code == 403
    # The time box runs out (the table refuses updates, so the owner lifts its guard for this one).
    sql("ALTER TABLE break_glass DISABLE TRIGGER break_glass_review_once")
    sql("UPDATE break_glass SET expires_at = now() - interval '1 second'")
    sql("ALTER TABLE break_glass ENABLE TRIGGER break_glass_review_once")
    assert other.get(f"/encounters/{encounter}").status_code == 403


@pytest.mark.parametrize("role", [Role.RECEPTION, Role.BILLING, Role.AUDITOR, Role.ADMIN, Role.NURSE])
def test_only_doctors_open_the_consultation_screen(role, seen, sign_in):
    _, encounter = seen
    assert sign_in(role).get(f"/encounters/{encounter}").status_code == 403


def test_a_doctor_cannot_open_another_doctors_appointment(desk, setup, register, factory, clinic, new_browser, sql):
    patient = patient_id(register(full_name="Ravi Menon"))
    desk.post("/queue/walk-in", {"patient_id": patient, "doctor_id": str(setup.doctor_id), "type_id": "",
                                 "reason": "", "intent": "add"}, page="/queue/walk-in")
    (appointment,) = sql("SELECT id FROM appointment")[0]
    other = new_browser()
    other.sign_in(factory.person(clinic, Role.DOCTOR, name="Dr Other"))
    other.get("/queue/mine")
    assert other.post(f"/appointments/{appointment}/consultation", {}, page="/queue/mine").status_code == 403
    assert sql("SELECT count(*) FROM encounter") == [(0,)]


def test_my_queue_lists_the_notes_left_to_sign(seen, doctor_browser, sql):
    _, encounter = seen
    page = doctor_browser.get("/queue/mine").get_data(as_text=True)
    assert "Notes to sign" in page and "Kavya Iyer" in page and f"/encounters/{encounter}" in page
    assert sql("SELECT action, patient_ids IS NOT NULL FROM audit_event WHERE action LIKE 'queue%' "
               "ORDER BY seq DESC LIMIT 1") == [("queue.view", True)]
    doctor_browser.post(f"/encounters/{encounter}/sign", {**NOTE, "version": "1"}, page=f"/encounters/{encounter}")
    assert "Notes to sign" not in doctor_browser.get("/queue/mine").get_data(as_text=True)
