"""Set-up for outbox tests: a doctor bookable round the clock, a patient with a mobile number and the
consents a test asks for, appointments booked through the booking service (so its hooks plan the
reminders), and a clinic switched to Twilio at a local fake."""

import itertools
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from app.clinics.models import Clinic
from app.db import get_session, set_tenant
from app.messaging.models import Reminder, ReminderSettings, Transport
from app.patients.models import Patient
from app.scheduling import booking
from app.scheduling.models import Appointment, AppointmentType
from app.scheduling.slots import holiday_name
from app.security.fields import keyring
from tests.conftest import patient_form, patient_id, worker_env
from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN
from tests.scheduling.conftest import add_sessions, add_type, open_clinic

ROOT = Path(__file__).resolve().parents[2]
WHATSAPP_FROM = "whatsapp:+14155238886"
SMS_FROM = "CLNCDK"
CONTENT_SID = "HX" + "ab" * 16


_surnames = itertools.cycle(["Sharma", "Verma", "Iyer", "Nair", "Reddy", "Gupta", "Mehta", "Bose", "Rao", "Das"])


@dataclass
class Desk:
    clinic: Clinic
    doctor_id: uuid.UUID
    type_id: uuid.UUID


def round_the_clock(sql, clinic, doctor, *, quiet_hours: bool = False) -> Desk:
    """The clinic open and the doctor bookable every day, 00:00-23:45, in 15-minute slots; reminders with
    the default settings, but without quiet hours unless asked (a test sends "now", whatever the hour)."""
    open_clinic(sql, clinic.id, "00:00", "23:59")
    add_sessions(sql, clinic.id, doctor.id, "00:00", "23:45", 15)
    if not quiet_hours:
        sql("INSERT INTO reminder_settings (clinic_id, enabled, channels, offsets_minutes, quiet_start, quiet_end, "
            "transport, key_version, updated_at) VALUES (:c, true, 'whatsapp,sms', '1440,120', '00:00', '00:00', "
            "'outbox', 1, now())", c=clinic.id)
    return Desk(clinic, doctor.id, add_type(sql, clinic.id))


def register(desk_browser, *, whatsapp=True, sms=True, language="en", phone=None) -> str:
    """A patient registered over HTTP with these reminder consents; their id."""
    form = patient_form(language=language, full_name=f"Sunita {next(_surnames)}", **({"phone": phone} if phone else {}))
    if whatsapp:
        form["consent_whatsapp"] = "y"
    if sms:
        form["consent_sms"] = "y"
    response = desk_browser.post("/patients/new", form, page="/patients/new")
    assert response.status_code == 303, response.get_data(as_text=True)[:1000]
    return patient_id(response.headers["Location"])


_handed_out: set[datetime] = set()


def next_slot(after: timedelta) -> datetime:
    """The first 15-minute boundary at least `after` from now (UTC) that the doctor can take: before the last
    slot at 23:30, not on a public holiday, and never one this helper has already handed out (a holiday
    two days ahead would otherwise push `next_slot(2 days)` onto `next_slot(3 days)`, one doctor, one time)."""
    moment = datetime.now(UTC) + after
    moment = moment.replace(second=0, microsecond=0)
    moment += timedelta(minutes=(-moment.minute) % 15)
    while True:
        local = moment.astimezone(ZoneInfo("Asia/Kolkata"))
        if (local.hour, local.minute) >= (23, 30):  # the doctor's last slot starts at 23:30
            moment += timedelta(minutes=30)
        elif holiday_name("29", local.date()):  # the clinic is closed
            moment += timedelta(days=1)
        elif moment in _handed_out:
            moment += timedelta(minutes=15)
        else:
            _handed_out.add(moment)
            return moment


def book(app, desk: Desk, patient: str, starts: datetime) -> uuid.UUID:
    """Book through the booking service (its hooks plan the reminders) and commit."""
    with app.app_context():
        db = get_session()
        set_tenant(db, clinic_id=desk.clinic.id, user_id=None)
        clinic = db.get(Clinic, desk.clinic.id)
        appointment = booking.book(db, clinic=clinic, patient=db.get(Patient, (clinic.id, uuid.UUID(patient))),
                                   doctor_id=desk.doctor_id, starts=starts,
                                   type_=db.get(AppointmentType, (clinic.id, desk.type_id)), reason=None, by=None)
        db.commit()
        return appointment.id


def rows(sql, appointment_id=None) -> list:
    where = "WHERE appointment_id = :a" if appointment_id else ""
    return sql(f"SELECT id, kind, channel, state, due_at, error_code, error_text, twilio_sid, appointment_version "
               f"FROM reminder {where} ORDER BY due_at, channel", a=appointment_id)


def make_due(sql, reminder_id, ago: timedelta = timedelta(seconds=5)) -> None:
    """Move a row's moment to just now (a test cannot wait a day for the 24-hour reminder)."""
    sql("UPDATE reminder SET due_at = now() - :ago WHERE id = :i", ago=ago, i=reminder_id)


def use_twilio(app, clinic_id, *, whatsapp=True, sms=True) -> None:
    """Switch the clinic to Twilio (the fake's credentials) with senders for the channels asked for."""
    with app.app_context():
        db = get_session()
        set_tenant(db, clinic_id=clinic_id, user_id=None)
        row = db.get(ReminderSettings, clinic_id) or ReminderSettings(clinic_id=clinic_id)
        row.transport, row.account_sid = Transport.TWILIO, ACCOUNT_SID
        row.auth_token_enc = keyring(db, clinic_id).seal("reminder_settings", "auth_token", clinic_id, AUTH_TOKEN)
        row.whatsapp_from = WHATSAPP_FROM if whatsapp else None
        row.sms_from = SMS_FROM if sms else None
        row.channels = "whatsapp,sms"
        db.add(row)
        db.commit()
    with app.app_context():
        db = get_session()
        set_tenant(db, clinic_id=clinic_id, user_id=None)
        from app.messaging.models import ReminderTemplate

        for language in ("en", "hi"):
            from app.messaging import texts

            db.add(ReminderTemplate(clinic_id=clinic_id, language=language, whatsapp_content_sid=CONTENT_SID,
                                    offer_content_sid=CONTENT_SID, sms_text=texts.SMS_TEXTS[language],
                                    offer_sms_text=texts.OFFER_SMS_TEXTS[language]))
        db.commit()


def send_now(app, clinic_id, reminder_id, now: datetime | None = None) -> str:
    """Run the send job's work in this process (the worker tests run the real worker)."""
    from app.messaging import sending

    with app.app_context():
        return sending.send(get_session(), clinic_id, uuid.UUID(str(reminder_id)), now=now)


def opened(app, clinic_id, reminder_id) -> tuple[str, str]:
    """The number and the text a sent row holds, unsealed."""
    with app.app_context():
        db = get_session()
        set_tenant(db, clinic_id=clinic_id, user_id=None)
        row = db.get(Reminder, (clinic_id, uuid.UUID(str(reminder_id))))
        ring = keyring(db, clinic_id)
        result = (ring.open("reminder", "to", row.id, row.to_enc), ring.open("reminder", "body", row.id, row.body_enc))
        db.rollback()
        return result


def appointment_status(sql, appointment_id) -> str:
    return sql("SELECT status FROM appointment WHERE id = :a", a=appointment_id)[0][0]


def worker_environment(app_config, fake=None, **extra) -> dict:
    env = worker_env(app_config)
    env["PUBLIC_URL"] = "https://clinic.example.in"
    env["NO_PROXY"] = "127.0.0.1,localhost"
    if fake is not None:
        env["TWILIO_API_BASE"] = fake.url
    env.update(extra)
    return env


def start_worker(env, log: Path) -> subprocess.Popen:
    """A real RQ worker process (with its scheduler), until stopped; its output goes to `log`."""
    with open(log, "ab") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen([sys.executable, "-m", "jobs.worker"], cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT)


def burst(env, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jobs.worker", "--burst"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


__all__ = ["Appointment"]
