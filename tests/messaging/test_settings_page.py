"""Reminder settings over HTTP: who may, the defaults, saving (audited, the auth token sealed and never shown
back), and every kind of bad input refused with 422, the typed values kept and nothing saved."""

import re
from html import unescape

import pytest

from app.auth.policy import Role
from app.db import get_session, set_tenant
from app.messaging import texts
from app.messaging.models import ReminderSettings
from app.security.fields import keyring
from tests.scheduling.conftest import HTMX, audit_since, high_water

URL = "/reminders/settings"
ACCOUNT = "AC" + "0123456789abcdef" * 2
TOKEN = "7a3f" * 8
CONTENT = "HX" + "a1b2c3d4" * 4
EN_SMS = "{clinic}: appointment {date}, {time}. Confirm or change: {link}"
HI_SMS = "{clinic}: अपॉइंटमेंट {date} {time}। पुष्टि या बदलाव: {link}"


def form(**overrides) -> dict:
    """A valid settings form: outbox transport, 3 days, 24 h and 90 minutes before, quiet 22:00-07:30."""
    values = {"enabled": "y", "channels": "whatsapp,sms", "offsets_minutes": "3d, 24h, 90m", "quiet_start": "22:00",
              "quiet_end": "07:30", "transport": "outbox", "account_sid": "", "auth_token": "", "whatsapp_from": "",
              "sms_from": "", "messaging_service_sid": ""}
    for language, text in (("en", EN_SMS), ("hi", HI_SMS)):
        values.update({f"{language}_whatsapp_content_sid": "", f"{language}_offer_content_sid": "",
                       f"{language}_sms_text": text, f"{language}_offer_sms_text": text.replace("{date}", "{date}!"),
                       f"{language}_dlt_template_id": "", f"{language}_offer_dlt_template_id": ""})
    values.update(overrides)
    return {k: v for k, v in values.items() if v is not None}


def twilio_form(**overrides) -> dict:
    return form(**{"transport": "twilio", "account_sid": ACCOUNT, "auth_token": TOKEN, "whatsapp_from": "+14155238886",
                   "sms_from": "+14155238887", "en_whatsapp_content_sid": CONTENT, **overrides})


def html(response) -> str:
    return response.get_data(as_text=True)


def error_for(page: str, field: str) -> str:
    match = re.search(rf'<p class="error" id="{field}-error">([^<]*)</p>', page)
    assert match, f"no error shown for {field}"
    return unescape(match.group(1))


def saved(sql) -> list[tuple]:
    return sql("SELECT enabled, channels, offsets_minutes, quiet_start::text, quiet_end::text, transport, account_sid, "
               "whatsapp_from, sms_from, messaging_service_sid, auth_token_enc IS NOT NULL FROM reminder_settings")


# --- Who may ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("role", [Role.RECEPTION, Role.DOCTOR, Role.NURSE, Role.BILLING, Role.AUDITOR])
def test_only_the_admin_may_open_or_save(role, factory, clinic, new_browser, sql):
    browser = new_browser()
    browser.sign_in(factory.person(clinic, role))
    assert browser.get(URL).status_code == 403
    assert browser.post(URL, form(), page="/").status_code == 403
    assert sql("SELECT count(*) FROM reminder_settings")[0][0] == 0


def test_the_page_shows_the_defaults_and_the_webhook_addresses(as_admin, clinic, app):
    page = html(as_admin.get(URL))
    assert 'value="24h, 2h"' in page and 'value="21:00"' in page and 'value="08:00"' in page
    assert '<option value="outbox" selected>' in page and '<option value="whatsapp,sms" selected>' in page
    assert 'id="enabled" name="enabled" type="checkbox" value="y" checked' in page
    base = app.config["PUBLIC_URL"].rstrip("/")
    assert f"{base}/twilio/{clinic.id}/status" in page and f"{base}/twilio/{clinic.id}/inbound" in page
    # The built-in texts are what a clinic registers on DLT unless it changes them.
    assert texts.SMS_TEXTS["en"] in unescape(page) and texts.OFFER_SMS_TEXTS["hi"] in unescape(page)
    assert "No token saved yet." in page


# --- Saving -------------------------------------------------------------------------------------------

def test_saving_writes_settings_and_templates_and_audits_field_names(as_admin, sql):
    mark = high_water(sql)
    response = as_admin.post(URL, form(en_dlt_template_id="1107161234567890123"), page=URL)
    assert response.status_code == 303 and response.headers["Location"].endswith(URL)
    assert saved(sql) == [(True, "whatsapp,sms", "4320,1440,90", "22:00:00", "07:30:00", "outbox", None, None, None,
                           None, False)]
    assert sql("SELECT language, sms_text, dlt_template_id, updated_by IS NOT NULL FROM reminder_template "
               "ORDER BY language") == [("en", EN_SMS, "1107161234567890123", True), ("hi", HI_SMS, None, True)]
    events = audit_since(sql, mark)
    assert [e[0] for e in events] == ["reminders.settings"]
    assert "offsets_minutes" in events[0][4] and "en.sms_text" in events[0][4] and "{link}" not in events[0][4]
    page = html(as_admin.get(URL))
    assert "Reminder settings saved" in page and 'value="3d, 24h, 90m"' in page and 'value="22:00"' in page


def test_saving_twice_changes_nothing_the_second_time(as_admin, sql):
    as_admin.post(URL, form(), page=URL)
    mark = high_water(sql)
    assert as_admin.post(URL, form(), page=URL).status_code == 303
    assert [e[4] for e in audit_since(sql, mark)] == ["changed: nothing"]


def test_turning_reminders_off(as_admin, sql):
    assert as_admin.post(URL, form(enabled=None), page=URL).status_code == 303
    assert saved(sql)[0][0] is False
    assert 'name="enabled" type="checkbox" value="y" checked' not in html(as_admin.get(URL))


def test_twilio_token_is_sealed_never_shown_and_kept_when_left_empty(as_admin, app, clinic, sql):
    mark = high_water(sql)
    response = as_admin.post(URL, twilio_form(whatsapp_from="whatsapp:+14155238886"), page=URL)
    assert response.status_code == 303
    assert saved(sql) == [(True, "whatsapp,sms", "4320,1440,90", "22:00:00", "07:30:00", "twilio", ACCOUNT,
                           "whatsapp:+14155238886", "+14155238887", None, True)]
    blob = sql("SELECT auth_token_enc FROM reminder_settings")[0][0]
    assert TOKEN.encode() not in bytes(blob)
    assert "auth_token" in audit_since(sql, mark)[0][4] and TOKEN not in audit_since(sql, mark)[0][4]
    page = html(as_admin.get(URL))
    assert TOKEN not in page and "A token is saved and never shown" in page
    # Saved again without a token: the stored one stays, exactly.
    assert as_admin.post(URL, twilio_form(auth_token=""), page=URL).status_code == 303
    assert bytes(sql("SELECT auth_token_enc FROM reminder_settings")[0][0]) == bytes(blob)
    with app.app_context():
        db = get_session()
        set_tenant(db, clinic_id=clinic.id, user_id=None)
        row = db.get(ReminderSettings, clinic.id)
        assert keyring(db, clinic.id).open("reminder_settings", "auth_token", clinic.id, row.auth_token_enc) == TOKEN
    # A new token replaces it.
    assert as_admin.post(URL, twilio_form(auth_token="b" * 32), page=URL).status_code == 303
    assert bytes(sql("SELECT auth_token_enc FROM reminder_settings")[0][0]) != bytes(blob)


def test_sms_through_a_messaging_service_needs_no_sms_sender(as_admin, sql):
    service = "MG" + "0f" * 16
    response = as_admin.post(URL, twilio_form(channels="sms", sms_from="", whatsapp_from="",
                                              en_whatsapp_content_sid="", messaging_service_sid=service), page=URL)
    assert response.status_code == 303
    assert saved(sql)[0][1] == "sms" and saved(sql)[0][9] == service


def test_htmx_save_redirects_and_htmx_error_swaps_the_form(as_admin, sql):
    as_admin.get(URL)
    bad = as_admin.post(URL, form(offsets_minutes="soon"), headers=HTMX)
    assert bad.status_code == 422 and "HX-Request" in bad.headers["Vary"]
    assert "<html" not in html(bad) and 'id="settings_form"' in html(bad) and 'value="soon"' in html(bad)
    good = as_admin.post(URL, form(), headers=HTMX)
    assert good.status_code == 204 and good.headers["HX-Redirect"].endswith(URL)
    assert len(saved(sql)) == 1


# --- Refused input --------------------------------------------------------------------------------------

LONG_EN = "{clinic}: " + "your appointment is coming up soon, please remember to come on time. " * 4 + "{link}"


@pytest.mark.parametrize(("overrides", "field", "message"), [
    ({"offsets_minutes": "soon"}, "offsets_minutes", "is not a time before the appointment"),
    ({"offsets_minutes": ""}, "offsets_minutes", "at least one time"),
    ({"offsets_minutes": "24h, 10m"}, "offsets_minutes", "10m is not allowed"),
    ({"offsets_minutes": "15d"}, "offsets_minutes", "15d is not allowed"),
    ({"offsets_minutes": "0h"}, "offsets_minutes", "0 is not allowed"),
    ({"offsets_minutes": "24h, 1d"}, "offsets_minutes", "Each reminder needs its own offset"),
    ({"offsets_minutes": "3d, 2d, 24h, 2h, 1h"}, "offsets_minutes", "At most 4 reminders"),
    ({"quiet_start": "25:00"}, "quiet_start", "HH:MM"),
    ({"quiet_end": "7"}, "quiet_end", "HH:MM"),
    ({"channels": "pigeon"}, "channels", "Choose which channels"),
    ({"transport": "fax"}, "transport", "Choose where messages go"),
    ({"account_sid": "AC123"}, "account_sid", "32 letters and digits"),
    ({"messaging_service_sid": "AC" + "0" * 32}, "messaging_service_sid", "“MG” followed by 32"),
    ({"auth_token": "not-a-token"}, "auth_token", "32 letters and digits"),
    ({"whatsapp_from": "12345"}, "whatsapp_from", "country code"),
    ({"sms_from": "CLINIC-DESK-1"}, "sms_from", "sender ID of up to 11 letters"),
    ({"en_whatsapp_content_sid": "HXnothex"}, "en_whatsapp_content_sid", "“HX” followed by 32"),
    ({"hi_offer_content_sid": "MG" + "0" * 32}, "hi_offer_content_sid", "“HX” followed by 32"),
    ({"en_dlt_template_id": "DLT-1"}, "en_dlt_template_id", "Digits only"),
    ({"en_sms_text": "{clinic}: see you on {date} at {time}"}, "en_sms_text", "must contain {link}"),
    ({"en_sms_text": "Dear {name}, {link}"}, "en_sms_text", "not {name}"),
    ({"en_sms_text": "{clinic} on {date!r}: {link}"}, "en_sms_text", "not {date}"),
    ({"hi_offer_sms_text": "{clinic} { {link}"}, "hi_offer_sms_text", "without its pair"),
    ({"en_offer_sms_text": ""}, "en_offer_sms_text", "Required"),
    ({"en_sms_text": LONG_EN}, "en_sms_text", "takes 3 SMS segments; English texts may take 2"),
    ({"hi_sms_text": "{clinic}: " + "आपका अपॉइंटमेंट कल है, समय पर आएँ। " * 4 + "{link}"}, "hi_sms_text",
     "Hindi texts may take 3"),
])
def test_bad_input_is_refused_keeping_what_was_typed(as_admin, sql, overrides, field, message):
    mark = high_water(sql)
    response = as_admin.post(URL, form(**overrides), page=URL)
    page = html(response)
    assert response.status_code == 422
    assert message in error_for(page, field)
    assert "Check the highlighted fields; nothing was saved." in page
    typed = overrides[field]
    if typed and field not in ("auth_token", "channels", "transport"):  # a select shows only its options
        assert typed in unescape(page)
    assert sql("SELECT count(*) FROM reminder_settings")[0][0] == 0
    assert sql("SELECT count(*) FROM reminder_template")[0][0] == 0
    assert audit_since(sql, mark) == []


def test_twilio_needs_its_account_token_senders_and_the_english_template(as_admin, sql):
    response = as_admin.post(URL, form(transport="twilio", sms_from="+14155238887"), page=URL)
    page = html(response)
    assert response.status_code == 422
    assert error_for(page, "account_sid") == "Required to send through Twilio."
    assert error_for(page, "auth_token") == "Required to send through Twilio."
    assert "Required to send WhatsApp" in error_for(page, "whatsapp_from")
    assert "approved English template" in error_for(page, "en_whatsapp_content_sid")
    assert 'id="sms_from-error"' not in page and 'value="+14155238887"' in page
    only_sms = as_admin.post(URL, form(transport="twilio", channels="sms", account_sid=ACCOUNT, auth_token=TOKEN),
                             page=URL)
    assert only_sms.status_code == 422 and "SMS sender or a Messaging Service" in error_for(html(only_sms), "sms_from")
    assert saved(sql) == []


def test_a_typed_token_is_not_shown_back_when_the_form_is_refused(as_admin):
    response = as_admin.post(URL, twilio_form(offsets_minutes="soon"), page=URL)
    assert response.status_code == 422 and TOKEN not in html(response)


def test_another_clinic_keeps_its_own_settings(as_admin, factory, other_clinic, new_browser, sql):
    assert as_admin.post(URL, form(), page=URL).status_code == 303
    other = new_browser()
    other.sign_in(factory.person(other_clinic, Role.ADMIN))
    assert 'value="24h, 2h"' in html(other.get(URL))
    assert sql("SELECT count(*) FROM reminder_settings")[0][0] == 1
