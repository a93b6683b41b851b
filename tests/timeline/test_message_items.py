"""Reminders on the patient's timeline (kind "message"): a reminder's fate — sent, not delivered and why,
not sent — and a patient's reply with what was done, each linked to its appointment; never the number
the message went to or its words (they carry the patient's link)."""

import re
import uuid
from datetime import timedelta
from html import unescape

import pytest

from app.auth.policy import Role
from app.db import get_session, new_id, set_tenant
from app.messaging.models import Channel, InboundMessage, Reminder, State, Transport
from app.security.fields import keyring
from app.timeline import events as timeline
from app.timeline.models import Kind
from tests.timeline.conftest import HTMX, T0, item_ids

PHONE = "+919800077777"
WORDS = "Sunrise Clinic: your appointment is on Mon 2 Mar at 10:01 am. http://127.0.0.1:5000/p/SECRETTOKENxxxxxxxxxxx"


class Messages:
    """Writes reminder and reply rows with their timeline events, as the send job and the webhooks do."""

    def __init__(self, app, clinic, patient: str, appointment_id: uuid.UUID):
        self.app, self.clinic, self.patient, self.appointment_id = app, clinic, uuid.UUID(patient), appointment_id

    def _write(self, build):
        with self.app.app_context():
            db = get_session()
            set_tenant(db, clinic_id=self.clinic.id, user_id=None)
            result = build(db, keyring(db, self.clinic.id))
            db.commit()
            return result

    def reminder(self, action: str, *, minute: int, kind="24h", channel=Channel.WHATSAPP, state=State.SENT,
                 code=None, text=None) -> uuid.UUID:
        at = T0 + timedelta(minutes=minute)

        def build(db, ring):
            row = Reminder(clinic_id=self.clinic.id, id=new_id(), appointment_id=self.appointment_id,
                           appointment_version=1, patient_id=self.patient, kind=kind, channel=channel, due_at=at,
                           state=state, transport=Transport.TWILIO, language="en", key_version=ring.active.version,
                           created_at=at, sent_at=at, status_at=at, error_code=code, error_text=text,
                           to_index=ring.token("phone", PHONE))
            row.to_enc = ring.seal("reminder", "to", row.id, PHONE)
            row.body_enc = ring.seal("reminder", "body", row.id, WORDS)
            db.add(row)
            db.flush()
            return timeline.add(db, clinic_id=self.clinic.id, patient_id=self.patient, kind=Kind.MESSAGE,
                                action=action, ref_id=row.id, by=None, at=at).id
        return self._write(build)

    def reply(self, *, minute: int, intent: str | None, outcome: str, reminder: bool = True) -> uuid.UUID:
        at = T0 + timedelta(minutes=minute)

        def build(db, ring):
            sent = db.scalar(Reminder.__table__.select().with_only_columns(Reminder.id)
                             .where(Reminder.appointment_id == self.appointment_id).limit(1)) if reminder else None
            row = InboundMessage(clinic_id=self.clinic.id, id=new_id(), twilio_sid="SM" + uuid.uuid4().hex,
                                 channel=Channel.WHATSAPP, from_index=ring.token("phone", PHONE), intent=intent,
                                 reminder_id=sent, patient_id=self.patient, outcome=outcome, received_at=at)
            db.add(row)
            db.flush()
            return timeline.add(db, clinic_id=self.clinic.id, patient_id=self.patient, kind=Kind.MESSAGE,
                                action="reply", ref_id=row.id, by=None, at=at).id
        return self._write(build)


@pytest.fixture
def appointment(history, patient, doctors, sql) -> uuid.UUID:
    history.appointment(patient, doctors[0].id, at=T0)
    return sql("SELECT id FROM appointment WHERE patient_id = :p", p=patient)[0][0]


@pytest.fixture
def messages(app, clinic, patient, appointment) -> Messages:
    return Messages(app, clinic, patient, appointment)


def titles(page: str) -> list[str]:
    return [unescape(re.sub(r"<[^>]+>", "", t)).strip() for t in re.findall(r'<p class="tl-title">(.*?)</p>', page)]


def test_the_desk_sees_what_became_of_each_message_and_reply(desk, patient, appointment, messages):
    messages.reminder("sent", minute=10)
    messages.reminder("failed", minute=20, kind="2h", channel=Channel.SMS, state=State.FAILED, code=21614)
    messages.reminder("undelivered", minute=25, kind="3d", channel=Channel.SMS, state=State.UNDELIVERED, code=30099,
                      text="Not delivered")
    messages.reminder("skipped", minute=30, kind="offer", channel=Channel.SMS, state=State.SKIPPED,
                      text="consent withdrawn")
    messages.reply(minute=40, intent="confirm", outcome="confirmed")
    page = desk.get(f"/patients/{patient}/timeline?kind=message").get_data(as_text=True)
    assert titles(page) == ["WhatsApp reply: 1, will come", "SMS offer of an earlier time not sent",
                         "SMS reminder 3 days before not delivered", "SMS reminder 2 hours before not delivered",
                         "WhatsApp reminder 24 hours before sent"]
    text = unescape(page)
    assert "Confirmed" in text and "Consent withdrawn." in text and "Not delivered." in text
    assert "The number is a landline and cannot receive SMS: ask for a mobile number." in text
    assert "For the appointment on 2 Mar, 10:00" in text
    assert text.count(f'href="/schedule/appointments/{appointment}"') >= 5
    assert not [x for x in (PHONE, "98000 77777", "SECRETTOKEN", "your appointment") if x in text]
    assert 'class="timeline-item tl-message' in page


def test_the_filter_offers_reminders_and_keeps_only_them(desk, patient, appointment, messages):
    ids = [messages.reminder("sent", minute=10),
           messages.reply(minute=20, intent="stop", outcome="whatsapp consent withdrawn")]
    page = desk.get(f"/patients/{patient}/timeline").get_data(as_text=True)
    assert 'value="message"> Reminders</label>' in page
    only = desk.get(f"/patients/{patient}/timeline?kind=message").get_data(as_text=True)
    assert item_ids(only) == [str(i) for i in reversed(ids)]
    assert "WhatsApp reply: STOP, no more reminders by WhatsApp or SMS" in unescape(only)
    assert "Whatsapp consent withdrawn" in unescape(only)
    fragment = desk.get(f"/patients/{patient}/timeline?kind=message", headers=HTMX).get_data(as_text=True)
    assert "<html" not in fragment and item_ids(fragment) == item_ids(only)


def test_a_reply_that_matched_nothing(desk, patient, appointment, messages):
    messages.reply(minute=5, intent=None, outcome="not understood", reminder=False)
    page = unescape(desk.get(f"/patients/{patient}/timeline?kind=message").get_data(as_text=True))
    assert titles(page) == ["WhatsApp reply: not one the clinic understands"]
    assert "Not understood" in page and "/schedule/appointments/" not in page


@pytest.mark.parametrize("role", [Role.DOCTOR, Role.NURSE, Role.BILLING])
def test_other_roles_see_the_same_plain_items(role, as_role, patient, appointment, messages):
    messages.reminder("failed", minute=20, channel=Channel.WHATSAPP, state=State.FAILED, code=63016)
    page = unescape(as_role(role).get(f"/patients/{patient}/timeline?kind=message").get_data(as_text=True))
    assert titles(page) == ["WhatsApp reminder 24 hours before not delivered"]
    assert "The patient could not be reached on WhatsApp." in page and PHONE not in page
