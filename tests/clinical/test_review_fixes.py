"""Defects a review found in the consultation screen, each kept fixed by a test: booking oneself into a
care relationship, a refused save handing out the new version, a visit left open past midnight,
rotation during signing, forged re-seals, unaudited refusals, typed text lost without JavaScript,
odd input giving 500s."""

# ruff: noqa: F811 (fixtures imported from other test modules are used as fixtures)
import uuid

import pytest
import sqlalchemy

from app.auth.policy import Role
from app.db import get_session, set_tenant
from app.security.rotation import reencrypt_batch, remaining, start_rotation
from tests.clinical.test_prescriptions import add, doctor_browser, registered, rows, seen, sign, signed  # noqa: F401
from tests.scheduling.conftest import (  # noqa: F401
    HTMX,
    Setup,
    add_sessions,
    audit_since,
    book,
    doctor,
    high_water,
    setup,
    sign_in,
    slot,
    working_day,
)

NOTE = {"subjective": "Cough for 3 days", "objective": "Chest clear", "assessment": "Viral URTI",
        "plan": "Steam, fluids"}


def save(browser, encounter, version, htmx=True, **sections):
    return browser.post(f"/encounters/{encounter}/note", {**NOTE, **sections, "version": str(version)},
                        page=f"/encounters/{encounter}", headers=HTMX if htmx else {})


def test_a_doctor_cannot_book_himself_into_a_patients_record(seen, doctor_browser, factory, clinic, new_browser,
                                                              sql, setup):
    patient, encounter = seen
    assert save(doctor_browser, encounter, 1, assessment="SENTINEL-PRIVATE").status_code == 200
    nosy = factory.person(clinic, Role.DOCTOR, name="Dr Nosy")
    add_sessions(sql, clinic.id, nosy.id)
    browser = new_browser()
    browser.sign_in(nosy)
    booked = book(browser, Setup(nosy.id, setup.type_id, setup.long_type_id), slot(working_day(3), "10:00"), patient)
    assert booked.status_code == 303
    refused = browser.get(f"/encounters/{encounter}")
    assert refused.status_code == 403 and "SENTINEL-PRIVATE" not in refused.get_data(as_text=True)


def test_a_refused_save_keeps_refusing_every_later_save_from_that_page(seen, doctor_browser, sql):
    _, encounter = seen
    assert save(doctor_browser, encounter, 1, plan="FROM THE OTHER WINDOW").status_code == 200
    refused = save(doctor_browser, encounter, 1, plan="MINE")
    assert refused.status_code == 409 and "hx-swap-oob" not in refused.get_data(as_text=True)
    assert 'data-state="conflict"' in refused.get_data(as_text=True)
    assert save(doctor_browser, encounter, 1, plan="MINE AGAIN").status_code == 409
    assert "FROM THE OTHER WINDOW" in doctor_browser.get(f"/encounters/{encounter}").get_data(as_text=True)


def test_without_javascript_a_refused_save_shows_what_was_typed(seen, doctor_browser):
    _, encounter = seen
    assert save(doctor_browser, encounter, 1, plan="OTHER WINDOW PLAN").status_code == 200
    refused = save(doctor_browser, encounter, 1, htmx=False, plan="MY TYPED PLAN")
    assert refused.status_code == 409 and "MY TYPED PLAN" in refused.get_data(as_text=True)


def test_a_visit_left_open_past_midnight_is_signed_and_completed(seen, doctor_browser, sql):
    _, encounter = seen
    page = f"/encounters/{encounter}"
    sql("UPDATE appointment SET day = day - 1, arrived_at = arrived_at - interval '1 day', "
        "started_at = started_at - interval '1 day'")
    signed = doctor_browser.post(f"{page}/sign", {**NOTE, "version": "1"}, page=page, headers=HTMX)
    assert signed.status_code == 204
    assert sql("SELECT e.status, a.status FROM encounter e JOIN appointment a ON a.id = e.appointment_id") == [
        ("signed", "completed")]


def test_a_prescription_signed_during_a_key_rotation_is_re_sealed_with_the_rest(seen, doctor_browser, app, sql):
    _, encounter = seen
    add(doctor_browser, encounter)
    rx_id = rows(sql)[0][0]
    doctor_browser.post(f"/prescriptions/{rx_id}/advice", {"advice": "Drink plenty of fluids.", "language": "en",
                                                           "next": f"/encounters/{encounter}"},
                        page=f"/encounters/{encounter}", headers=HTMX)
    version = rows(sql)[0][4]
    clinic_id = uuid.UUID(sql("SELECT clinic_id::text FROM prescription")[0][0])
    with app.app_context():
        db = get_session()
        set_tenant(db, clinic_id=clinic_id, user_id=None)
        start_rotation(db, clinic_id)
        db.commit()
    assert sign(doctor_browser, rx_id, version).status_code == 200
    with app.app_context():
        db = get_session()
        set_tenant(db, clinic_id=clinic_id, user_id=None)
        while reencrypt_batch(db, clinic_id, batch_size=50):
            db.commit()
        db.commit()
        assert remaining(db, clinic_id) == 0


def test_a_signed_note_cannot_be_rewritten_by_a_fake_re_seal(seen, doctor_browser, app, sql):
    _, encounter = seen
    page = f"/encounters/{encounter}"
    assert doctor_browser.post(f"{page}/sign", {**NOTE, "version": "1"}, page=page, headers=HTMX).status_code == 204
    clinic_id = uuid.UUID(sql("SELECT clinic_id::text FROM encounter")[0][0])
    with app.app_context():
        from app.security.fields import keyring

        db = get_session()
        set_tenant(db, clinic_id=clinic_id, user_id=None)
        forged = keyring(db, clinic_id).seal("encounter", "assessment", uuid.UUID(encounter), "FORGED")
        with pytest.raises(sqlalchemy.exc.DBAPIError, match="active key"):
            db.execute(sqlalchemy.text("UPDATE encounter SET assessment_enc = :b, key_version = 99"), {"b": forged})
        db.rollback()
    assert "Viral URTI" in doctor_browser.get(page).get_data(as_text=True)


def test_a_refused_diagnosis_or_addendum_that_shows_the_list_is_audited(seen, doctor_browser, sql):
    _, encounter = seen
    page = f"/encounters/{encounter}"
    doctor_browser.post(f"{page}/diagnoses", {"text": "Asthma", "code": ""}, page=page, headers=HTMX)
    mark = high_water(sql)
    refused = doctor_browser.post(f"{page}/diagnoses", {"text": "", "code": ""}, page=page, headers=HTMX)
    assert refused.status_code == 422 and "Asthma" in refused.get_data(as_text=True)
    assert [a for a, *_ in audit_since(sql, mark)][-1] == "encounter.view"


def test_odd_input_gets_a_clear_answer_not_a_500(seen, signed, sign_in, new_browser, sql):
    patient, _ = seen
    nurse = sign_in(Role.NURSE)
    nurse.get(f"/patients/{patient}")
    nul = nurse.post(f"/patients/{patient}/break-glass", {"reason": "unconscious\x00 in the waiting room"},
                     page=f"/patients/{patient}")
    assert nul.status_code == 422 and "null character" in nul.get_data(as_text=True)  # app/security/text.py
    assert sql("SELECT count(*) FROM break_glass") == [(0,)]
    glass = nurse.post(f"/patients/{patient}/break-glass", {"reason": "unconscious\x07 in the waiting room"},
                       page=f"/patients/{patient}")
    assert glass.status_code == 303
    assert sql("SELECT reason FROM break_glass") == [("unconscious in the waiting room",)]
    clinic_id, rx_id = sql("SELECT clinic_id::text, id::text FROM prescription")[0]
    assert new_browser().get(f"/rx/{clinic_id}/{rx_id}?code=ÄÄÄÄÄÄÄÄÄÄÄÄ").status_code == 404


@pytest.mark.parametrize("code", ["IX", "J00-J06"])
def test_an_icd_chapter_or_block_is_not_a_diagnosis(code, seen, doctor_browser):
    _, encounter = seen
    page = f"/encounters/{encounter}"
    refused = doctor_browser.post(f"{page}/diagnoses", {"text": "", "code": code}, page=page, headers=HTMX)
    assert refused.status_code == 422 and "is not an ICD-10 code" in refused.get_data(as_text=True)
