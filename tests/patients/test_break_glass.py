"""Break-the-glass: a stated reason, a time box, a flagged audit record, admins told until reviewed."""

import time
from datetime import timedelta

import pytest
from sqlalchemy.exc import DBAPIError

from app.auth.policy import Role
from app.db import get_session, set_tenant
from app.patients import break_glass
from tests.conftest import patient_id


@pytest.fixture
def nurse(factory, clinic):
    return factory.person(clinic, Role.NURSE, name="Nisha Nurse")


def _open(app, clinic, nurse, pid, reason="Unconscious patient brought in, need allergies", **kw):
    with app.test_request_context():
        db = get_session()
        set_tenant(db, clinic_id=clinic.id, user_id=nurse.id)
        grant = break_glass.open_grant(db, clinic_id=clinic.id, user_id=nurse.id, patient_id=pid, reason=reason, **kw)
        db.commit()
        return grant.id


def _active(app, clinic, nurse, pid):
    with app.app_context():
        db = get_session()
        set_tenant(db, clinic_id=clinic.id, user_id=nurse.id)
        return break_glass.active_grant(db, clinic_id=clinic.id, user_id=nurse.id, patient_id=pid) is not None


def test_a_reason_is_required(app, clinic, nurse, register):
    pid = patient_id(register())
    with pytest.raises(break_glass.ReasonRequired):
        _open(app, clinic, nurse, pid, reason="   because ")
    assert not _active(app, clinic, nurse, pid)


def test_grant_is_time_boxed_and_flagged_in_the_audit_trail(app, clinic, nurse, register, sql):
    pid = patient_id(register())
    _open(app, clinic, nurse, pid, duration=timedelta(seconds=1))
    assert _active(app, clinic, nurse, pid)
    flagged = sql("SELECT action, reason, flagged FROM audit_event WHERE action = 'break_glass.open'")
    assert flagged == [("break_glass.open", "Unconscious patient brought in, need allergies", True)]
    time.sleep(1.2)
    assert not _active(app, clinic, nurse, pid)


def test_an_opened_grant_cannot_be_rewritten(app, clinic, nurse, register, sql):
    pid = patient_id(register())
    _open(app, clinic, nurse, pid)
    with pytest.raises(DBAPIError, match="reviewed once"):
        sql("UPDATE break_glass SET expires_at = now() + interval '1 year'")


def test_expired_grant_with_a_short_time_box(app, clinic, nurse, register):
    pid = patient_id(register())
    _open(app, clinic, nurse, pid, duration=timedelta(seconds=-1))
    assert not _active(app, clinic, nurse, pid)


def test_admins_are_told_until_one_reviews(app, clinic, nurse, register, admin, new_browser, factory, sql):
    pid = patient_id(register())
    grant_id = _open(app, clinic, nurse, pid)
    boss = new_browser()
    boss.sign_in(admin)
    home = boss.get("/").get_data(as_text=True)
    assert "Break-the-glass access to review (1)" in home
    assert "Nisha Nurse" in home and "Unconscious patient brought in" in home and "MRN-000001" in home
    doctor = new_browser()
    doctor.sign_in(factory.person(clinic, Role.DOCTOR))
    assert "Break-the-glass" not in doctor.get("/").get_data(as_text=True)
    assert doctor.post(f"/break-glass/{grant_id}/review", {}, page="/").status_code == 403
    assert boss.post(f"/break-glass/{grant_id}/review", {}, page="/").status_code == 303
    assert "Break-the-glass access to review" not in boss.get("/").get_data(as_text=True)
    assert sql("SELECT reviewed_by FROM break_glass") == [(admin.id,)]
    assert sql("SELECT count(*) FROM audit_event WHERE action = 'break_glass.review'")[0][0] == 1


def test_another_clinics_grant_cannot_be_reviewed(app, clinic, nurse, register, factory, other_clinic, new_browser):
    pid = patient_id(register())
    grant_id = _open(app, clinic, nurse, pid)
    elsewhere = new_browser()
    elsewhere.sign_in(factory.person(other_clinic, Role.ADMIN))
    assert elsewhere.post(f"/break-glass/{grant_id}/review", {}, page="/").status_code == 404
