"""The clinic admin manages staff over HTTP: list, add, change role, disable/enable, reset MFA.

Every account action is checked the way the affected person meets it (their open session, their
next sign-in) and the way an auditor sees it (the `auth_event` rows).
"""

import html
import re
from html.parser import HTMLParser

import pyotp
import pytest

from app.auth.models import AuthEventKind
from app.auth.policy import Role

NEW_PASSWORD = "a long and private passphrase"


# --- Reading pages -------------------------------------------------------------------------------

class _Page(HTMLParser):
    """Form controls (attributes, typed value, selected option) and table rows of a page."""

    def __init__(self, text: str):
        super().__init__()
        self.inputs: dict[str, dict] = {}
        self.selected: dict[str, str] = {}
        self.rows: list[list[str]] = []
        self._select = None
        self._cell: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "input" and "name" in attrs:
            self.inputs.setdefault(attrs["name"], attrs)
        elif tag == "select":
            self._select = attrs.get("name")
            self.inputs.setdefault(self._select, attrs)
        elif tag == "option" and self._select and "selected" in attrs:
            self.selected[self._select] = attrs.get("value")
        elif tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None
        elif tag in ("td", "th") and self._cell is not None and self.rows:
            self.rows[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def page(response) -> _Page:
    return _Page(response.get_data(as_text=True))


def text_of(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def field_error(response, field_id: str) -> str | None:
    """The error shown beside a field (the input points at it with aria-describedby)."""
    body = response.get_data(as_text=True)
    found = re.search(rf'<p class="error" id="{field_id}-error">([^<]*)</p>', body)
    if not found:
        return None
    control = page(response).inputs[field_id]
    assert control.get("aria-invalid") == "true"
    assert control.get("aria-describedby") == f"{field_id}-error"
    return html.unescape(found.group(1))


def staff_row(response, name: str) -> list[str] | None:
    """The staff table row of a person: name, e-mail, role, two-step, status, last sign-in."""
    rows = [r for r in page(response).rows if r and r[0] == name]
    assert len(rows) <= 1
    return rows[0] if rows else None


def temp_password_from(response) -> str:
    found = re.search(r'data-testid="temp-password">([^<]+)</code>', response.get_data(as_text=True))
    assert found, "the created page shows no temporary password"
    return html.unescape(found.group(1))


def enrol_secret_from(response) -> str:
    found = re.search(r'data-testid="totp-secret">([A-Z2-7 ]+)<', response.get_data(as_text=True))
    assert found, "the enrolment page shows no key"
    return found.group(1).replace(" ", "")


# --- Fixtures ------------------------------------------------------------------------------------

def events(sql, kind, user_id):
    return sql("SELECT user_id, actor_user_id, detail FROM auth_event WHERE kind = :k AND user_id = :u ORDER BY at",
               k=kind, u=user_id)


def account(sql, user_id):
    return sql("SELECT email, full_name, must_change_password, mfa_enrolled_at, totp_secret_enc, "
               "disabled_at, password_hash FROM staff_user WHERE id = :id", id=user_id)[0]


def sessions_of(sql, user_id) -> int:
    return sql("SELECT count(*) FROM user_session WHERE user_id = :u", u=user_id)[0][0]


def forget_used_code(sql, person):
    """Allow the same person's current TOTP code again (codes are single-use per 30 s step)."""
    sql("UPDATE staff_user SET totp_last_step = NULL WHERE id = :id", id=person.id)


# --- The list ------------------------------------------------------------------------------------

def test_list_shows_this_clinics_staff_with_role_mfa_and_status(as_admin, factory, clinic, other_clinic, sql):
    factory.person(clinic, Role.DOCTOR, name="Dev Doctor", enrolled=False)
    nurse = factory.person(clinic, Role.NURSE, name="Nina Nurse")
    sql("UPDATE staff_user SET disabled_at = now() WHERE id = :id", id=nurse.id)
    factory.person(other_clinic, Role.RECEPTION, name="Olga Otherclinic")

    response = as_admin.get("/staff/")
    assert response.status_code == 200
    assert "Staff of Sunrise Clinic" in text_of(response)

    admin_row = staff_row(response, "Asha Admin")
    assert admin_row[2:5] == ["Clinic admin", "Set up", "Active"]
    assert admin_row[5] != "—"  # the admin just signed in
    doctor_row = staff_row(response, "Dev Doctor")
    assert doctor_row[2:6] == ["Doctor", "Not yet set up", "Active", "—"]
    nurse_row = staff_row(response, "Nina Nurse")
    assert nurse_row[1] == nurse.email
    assert nurse_row[2:5] == ["Nurse", "Set up", "Disabled"]

    assert staff_row(response, "Olga Otherclinic") is None
    assert "Olga Otherclinic" not in text_of(response)


@pytest.mark.parametrize("role", [Role.RECEPTION, Role.DOCTOR, Role.NURSE, Role.BILLING, Role.AUDITOR])
def test_other_roles_cannot_manage_staff(browser, factory, clinic, admin, role, sql):
    person = factory.person(clinic, role, name="Not An Admin")
    colleague = factory.person(clinic, Role.RECEPTION, name="Colleague")
    browser.sign_in(person)

    assert browser.get("/staff/").status_code == 403
    assert browser.get("/staff/new").status_code == 403
    assert browser.get(f"/staff/{colleague.id}").status_code == 403
    home = browser.get("/")
    assert 'href="/staff/"' not in home.get_data(as_text=True)

    users_before = sql("SELECT count(*) FROM staff_user")[0][0]
    attempts = {
        "/staff/new": {"full_name": "Sneaky", "email": "sneaky@example.in", "role": "admin"},
        f"/staff/{colleague.id}/role": {"role": "admin"},
        f"/staff/{colleague.id}/disable": {"password": person.password},
        f"/staff/{colleague.id}/enable": {"password": person.password},
        f"/staff/{colleague.id}/reset-mfa": {"password": person.password},
    }
    for url, data in attempts.items():
        assert browser.post(url, data, page="/").status_code == 403, url

    assert sql("SELECT count(*) FROM staff_user")[0][0] == users_before
    assert sql("SELECT role FROM membership WHERE user_id = :u", u=colleague.id) == [("reception",)]
    colleague_now = account(sql, colleague.id)
    assert colleague_now.disabled_at is None and colleague_now.mfa_enrolled_at is not None
    denied = sql("SELECT count(*) FROM auth_event WHERE kind = 'access_denied' AND user_id = :u", u=person.id)
    assert denied[0][0] >= 3 + len(attempts)


# --- Adding a person -----------------------------------------------------------------------------

def test_add_new_person_shows_temporary_password_once(as_admin, admin, sql):
    form = as_admin.get("/staff/new")
    assert form.status_code == 200
    response = as_admin.post("/staff/new", {"full_name": "  Kavya Rao ", "email": "Kavya.Rao@Example.in",
                                            "role": "reception"})
    assert response.status_code == 200
    temp = temp_password_from(response)
    assert len(temp) == 16
    assert "Kavya Rao can now sign in" in text_of(response)

    rows = sql("SELECT id FROM staff_user WHERE email = 'kavya.rao@example.in'")
    assert len(rows) == 1
    user_id = rows[0][0]
    created = account(sql, user_id)
    assert created.full_name == "Kavya Rao"
    assert created.must_change_password is True
    assert created.mfa_enrolled_at is None and created.totp_secret_enc is None
    assert created.disabled_at is None
    assert created.password_hash.startswith("$argon2id$") and temp not in created.password_hash
    assert sql("SELECT role FROM membership WHERE user_id = :u", u=user_id) == [("reception",)]

    # shown once: not on the person's page, not in the list, not in any event
    detail = as_admin.get(f"/staff/{user_id}")
    assert detail.status_code == 200 and temp not in detail.get_data(as_text=True)
    listing = as_admin.get("/staff/")
    assert staff_row(listing, "Kavya Rao")[2:5] == ["Receptionist", "Not yet set up", "Active"]
    assert temp not in listing.get_data(as_text=True)
    everything = " ".join(str(v) for row in sql("SELECT * FROM auth_event") for v in row)
    assert temp not in everything

    assert events(sql, "user_created", user_id) == [(user_id, admin.id, None)]


def test_email_pasted_with_surrounding_spaces_is_accepted(as_admin, sql):
    """The view and `add_staff` strip the e-mail, so a pasted address with a stray space must pass the form."""
    response = as_admin.post("/staff/new", {"full_name": "Pasted Address", "email": " pasted@example.in ",
                                            "role": "nurse"}, page="/staff/new")
    assert response.status_code == 200, re.findall(r'class="error"[^>]*>([^<]*)<', response.get_data(as_text=True))
    assert sql("SELECT count(*) FROM staff_user WHERE email = 'pasted@example.in'")[0][0] == 1


def test_new_person_signs_in_enrols_mfa_then_must_change_password(as_admin, new_browser, sql):
    created = as_admin.post("/staff/new", {"full_name": "Farah Khan", "email": "farah@example.in",
                                           "role": "billing"}, page="/staff/new")
    temp = temp_password_from(created)

    farah = new_browser()
    response = farah.post("/auth/login", {"email": "farah@example.in", "password": temp}, page="/auth/login")
    assert response.status_code == 303 and response.headers["Location"] == "/auth/enrol"
    # nothing is reachable between the password and the second factor
    assert farah.get("/").status_code == 303
    assert farah.get("/auth/mfa").headers["Location"] == "/auth/enrol"

    enrol = farah.get("/auth/enrol")
    assert enrol.status_code == 200
    shown = re.search(r'data-testid="totp-secret">([A-Z2-7 ]+)<', enrol.get_data(as_text=True)).group(1)
    assert re.fullmatch(r"[A-Z2-7]{4}( [A-Z2-7]{4})+", shown), "the key is shown in groups of four"
    secret = shown.replace(" ", "")
    assert len(secret) == 32

    wrong = str((int(pyotp.TOTP(secret).now()) + 1) % 1_000_000).zfill(6)
    refused = farah.post("/auth/enrol", {"code": wrong})
    assert refused.status_code == 422
    assert enrol_secret_from(refused) == secret  # the same key, so the app already added stays valid

    confirmed = farah.post("/auth/enrol", {"code": pyotp.TOTP(secret).now()})
    assert confirmed.status_code == 200
    assert 'data-testid="recovery-codes"' in confirmed.get_data(as_text=True)
    assert 'href="/account/password"' in confirmed.get_data(as_text=True)

    (user_id,) = sql("SELECT id FROM staff_user WHERE email = 'farah@example.in'")[0]
    assert account(sql, user_id).mfa_enrolled_at is not None

    # until the temporary password is replaced, every page leads to the password form
    for url in ("/", "/account"):
        blocked = farah.get(url)
        assert blocked.status_code == 303 and blocked.headers["Location"] == "/account/password", url
    form = farah.get("/account/password")
    assert form.status_code == 200
    assert "You signed in with a temporary password" in text_of(form)

    changed = farah.post("/account/password", {"current": temp, "new": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert changed.status_code == 303
    home = farah.get("/")
    assert home.status_code == 200
    assert "as <strong>Billing</strong>" in home.get_data(as_text=True)
    assert account(sql, user_id).must_change_password is False

    # the temporary password no longer works; the new one does
    again = new_browser()
    assert again.post("/auth/login", {"email": "farah@example.in", "password": temp},
                      page="/auth/login").status_code == 422
    assert again.post("/auth/login", {"email": "farah@example.in", "password": NEW_PASSWORD},
                      page="/auth/login").headers["Location"] == "/auth/mfa"


def test_existing_account_of_a_clinic_you_do_not_administer_is_not_pulled_in(
        as_admin, admin, factory, other_clinic, sql):
    doctor = factory.person(other_clinic, Role.DOCTOR, name="Dr Meera Iyer")
    response = as_admin.post("/staff/new", {"full_name": "Someone Else", "email": doctor.email.upper(),
                                            "role": "nurse"}, page="/staff/new")
    assert response.status_code == 422
    html = text_of(response)
    assert "already has a ClinicDesk account at a clinic you do not administer" in html
    assert "Dr Meera Iyer" not in html  # the stored name is not revealed
    assert "Someone Else" in response.get_data(as_text=True)  # the typed input is kept
    roles = sql("SELECT role FROM membership WHERE user_id = :u", u=doctor.id)
    assert roles == [("doctor",)]


def test_admin_of_both_clinics_gives_an_existing_account_a_role_without_new_password(
        factory, clinic, other_clinic, new_browser, sql):
    group_admin = factory.person([clinic, other_clinic], Role.ADMIN, name="Group Admin")
    doctor = factory.person(other_clinic, Role.DOCTOR, name="Dr Meera Iyer")
    hash_before = account(sql, doctor.id).password_hash
    admin_browser = new_browser()
    admin_browser.sign_in(group_admin)
    if "working in <strong>Sunrise Clinic" not in admin_browser.get("/").get_data(as_text=True):
        admin_browser.post("/session/clinic", {"clinic_id": str(clinic.id)}, page="/")
    response = admin_browser.post("/staff/new", {"full_name": "Someone Else", "email": doctor.email.upper(),
                                                 "role": "nurse"}, page="/staff/new")
    assert response.status_code == 303 and response.headers["Location"] == f"/staff/{doctor.id}"
    shown = admin_browser.get(response.headers["Location"])
    assert "Dr Meera Iyer now also has a role here." in text_of(shown)
    assert 'data-testid="temp-password"' not in shown.get_data(as_text=True)
    after = account(sql, doctor.id)
    assert after.password_hash == hash_before and after.full_name == "Dr Meera Iyer"
    roles = dict(sql("SELECT c.name, m.role FROM membership m JOIN clinic c ON c.id = m.clinic_id "
                     "WHERE m.user_id = :u", u=doctor.id))
    assert roles == {"Lakeside Clinic": "doctor", "Sunrise Clinic": "nurse"}
    theirs = new_browser()
    theirs.sign_in(doctor)
    home = theirs.get("/").get_data(as_text=True)
    assert "Sunrise Clinic (Nurse)" in home and "Lakeside Clinic (Doctor)" in home


def test_admin_of_one_clinic_cannot_disable_or_reset_someone_who_also_works_elsewhere(
        as_admin, admin, factory, clinic, other_clinic, new_browser, sql):
    shared = factory.person([clinic, other_clinic], Role.NURSE, name="Shared Nurse")
    page_url = f"/staff/{shared.id}"
    html = as_admin.get(page_url).get_data(as_text=True)
    assert "also works at a clinic you do not administer" in html and "Disable account" not in html
    for action in ("disable", "enable", "reset-mfa"):
        response = as_admin.post(f"{page_url}/{action}", {"password": admin.password}, page=page_url)
        assert response.status_code == 403, action
    assert account(sql, shared.id).disabled_at is None
    # what the admin can do: take away the role in their own clinic, at once
    theirs = new_browser()
    theirs.sign_in(shared)
    removed = as_admin.post(f"{page_url}/remove", {"password": admin.password}, page=page_url)
    assert removed.status_code == 303
    assert sql("SELECT c.name FROM membership m JOIN clinic c ON c.id = m.clinic_id WHERE m.user_id = :u",
               u=shared.id) == [("Lakeside Clinic",)]
    assert "Lakeside Clinic" in theirs.get("/").get_data(as_text=True)
    assert sql("SELECT count(*) FROM auth_event WHERE kind = 'membership_removed' AND user_id = :u",
               u=shared.id)[0][0] == 1


def test_adding_someone_already_in_this_clinic_is_refused_beside_the_field(as_admin, factory, clinic, sql):
    existing = factory.person(clinic, Role.DOCTOR, name="Dr Already Here")
    users_before = sql("SELECT count(*) FROM staff_user")[0][0]
    typed = {"full_name": "Typed Name", "email": existing.email.upper(), "role": "billing"}

    response = as_admin.post("/staff/new", typed, page="/staff/new")
    assert response.status_code == 422
    assert field_error(response, "email") == "This person already has a role in this clinic."
    form = page(response)
    assert form.inputs["full_name"]["value"] == "Typed Name"
    assert form.inputs["email"]["value"] == existing.email.upper()
    assert form.selected["role"] == "billing"

    assert sql("SELECT count(*) FROM staff_user")[0][0] == users_before
    assert sql("SELECT role FROM membership WHERE user_id = :u", u=existing.id) == [("doctor",)]


@pytest.mark.parametrize("email", ["not-an-email", "two@@example.in", "nobody@"])
def test_invalid_email_is_refused_with_input_kept(as_admin, email, sql):
    users_before = sql("SELECT count(*) FROM staff_user")[0][0]
    response = as_admin.post("/staff/new", {"full_name": "Priya Nair", "email": email, "role": "doctor"},
                             page="/staff/new")
    assert response.status_code == 422
    assert field_error(response, "email")
    form = page(response)
    assert form.inputs["email"]["value"] == email
    assert form.inputs["full_name"]["value"] == "Priya Nair"
    assert form.selected["role"] == "doctor"
    assert sql("SELECT count(*) FROM staff_user")[0][0] == users_before


def test_missing_name_is_refused_with_input_kept(as_admin, sql):
    response = as_admin.post("/staff/new", {"full_name": "", "email": "valid@example.in", "role": "nurse"},
                             page="/staff/new")
    assert response.status_code == 422
    assert field_error(response, "full_name")
    assert page(response).inputs["email"]["value"] == "valid@example.in"
    assert sql("SELECT count(*) FROM staff_user WHERE email = 'valid@example.in'")[0][0] == 0


# --- Changing a role -----------------------------------------------------------------------------

def test_role_change_applies_to_the_persons_very_next_request(as_admin, admin, factory, clinic, new_browser, sql):
    person = factory.person(clinic, Role.RECEPTION, name="Ravi Reception")
    theirs = new_browser()
    theirs.sign_in(person)
    assert "as <strong>Receptionist</strong>" in theirs.get("/").get_data(as_text=True)
    assert theirs.get("/audit/sign-ins").status_code == 403

    changed = as_admin.post(f"/staff/{person.id}/role", {"role": "billing"}, page=f"/staff/{person.id}")
    assert changed.status_code == 303 and changed.headers["Location"] == f"/staff/{person.id}"
    assert "Ravi Reception is now Billing." in text_of(as_admin.get(changed.headers["Location"]))
    home = theirs.get("/").get_data(as_text=True)
    assert "as <strong>Billing</strong>" in home and "Receptionist" not in home

    as_admin.post(f"/staff/{person.id}/role", {"role": "auditor"}, page=f"/staff/{person.id}")
    assert theirs.get("/audit/sign-ins").status_code == 200  # same session, no new sign-in

    as_admin.post(f"/staff/{person.id}/role", {"role": "reception"}, page=f"/staff/{person.id}")
    assert theirs.get("/audit/sign-ins").status_code == 403

    recorded = events(sql, "role_changed", person.id)
    assert [(u, a) for u, a, _ in recorded] == [(person.id, admin.id)] * 3
    assert [d for _, _, d in recorded] == ["Sunrise Clinic: billing", "Sunrise Clinic: auditor",
                                           "Sunrise Clinic: reception"]


def test_role_change_is_per_clinic(as_admin, factory, clinic, other_clinic, sql):
    person = factory.person([clinic, other_clinic], Role.RECEPTION, name="Two Clinics")
    as_admin.post(f"/staff/{person.id}/role", {"role": "nurse"}, page=f"/staff/{person.id}")
    roles = dict(sql("SELECT c.name, m.role FROM membership m JOIN clinic c ON c.id = m.clinic_id "
                     "WHERE m.user_id = :u", u=person.id))
    assert roles == {"Sunrise Clinic": "nurse", "Lakeside Clinic": "reception"}


def test_unknown_role_is_refused(as_admin, factory, clinic, sql):
    person = factory.person(clinic, Role.NURSE)
    response = as_admin.post(f"/staff/{person.id}/role", {"role": "superuser"}, page=f"/staff/{person.id}")
    assert response.status_code == 422
    assert field_error(response, "role")
    assert sql("SELECT role FROM membership WHERE user_id = :u", u=person.id) == [("nurse",)]


def test_admin_cannot_change_own_role(as_admin, admin, sql):
    own = as_admin.get(f"/staff/{admin.id}")
    assert own.status_code == 200
    assert f'action="/staff/{admin.id}/role"' not in own.get_data(as_text=True)  # no form offered

    response = as_admin.post(f"/staff/{admin.id}/role", {"role": "reception"})
    assert response.status_code == 422
    assert sql("SELECT role FROM membership WHERE user_id = :u", u=admin.id) == [("admin",)]
    assert events(sql, "role_changed", admin.id) == []
    assert as_admin.get("/staff/").status_code == 200


def test_admin_cannot_disable_or_reset_own_account(as_admin, admin, sql):
    as_admin.get(f"/staff/{admin.id}")
    for action in ("disable", "reset-mfa"):
        response = as_admin.post(f"/staff/{admin.id}/{action}", {"password": admin.password})
        assert response.status_code == 403, action
    after = account(sql, admin.id)
    assert after.disabled_at is None and after.mfa_enrolled_at is not None
    assert as_admin.get("/staff/").status_code == 200


# --- Disabling and enabling ----------------------------------------------------------------------

def test_disable_needs_the_admins_password(as_admin, admin, factory, clinic, new_browser, sql):
    person = factory.person(clinic, Role.DOCTOR, name="Dr Still Active")
    theirs = new_browser()
    theirs.sign_in(person)

    response = as_admin.post(f"/staff/{person.id}/disable", {"password": "not my password at all"},
                             page=f"/staff/{person.id}")
    assert response.status_code == 422
    assert "Your password is not correct." in text_of(response)
    assert "not my password at all" not in response.get_data(as_text=True)

    assert account(sql, person.id).disabled_at is None
    assert events(sql, "user_disabled", person.id) == []
    assert theirs.get("/").status_code == 200  # their session is untouched
    failed = sql("SELECT user_id, actor_user_id FROM auth_event WHERE kind = 'reauth_failed'")
    assert [f[0] for f in failed] == [admin.id]  # the failure is recorded against the admin

    missing = as_admin.post(f"/staff/{person.id}/disable", {"password": ""}, page=f"/staff/{person.id}")
    assert missing.status_code == 422
    assert account(sql, person.id).disabled_at is None


def test_disable_ends_sessions_at_once_and_blocks_sign_in_until_enabled(
        as_admin, admin, factory, clinic, new_browser, sql):
    person = factory.person(clinic, Role.RECEPTION, name="Sunil Desk")
    theirs = new_browser()
    theirs.sign_in(person)
    assert theirs.get("/").status_code == 200
    assert sessions_of(sql, person.id) == 1

    response = as_admin.post(f"/staff/{person.id}/disable", {"password": admin.password},
                             page=f"/staff/{person.id}")
    assert response.status_code == 303 and response.headers["Location"] == f"/staff/{person.id}"
    shown = as_admin.get(f"/staff/{person.id}")
    assert "Sunil Desk's account is disabled and their sessions have ended." in text_of(shown)
    assert "Disabled since" in text_of(shown)
    assert staff_row(as_admin.get("/staff/"), "Sunil Desk")[4] == "Disabled"
    assert account(sql, person.id).disabled_at is not None
    assert sessions_of(sql, person.id) == 0

    kicked = theirs.get("/")
    assert kicked.status_code == 303 and kicked.headers["Location"].startswith("/auth/login")
    htmx = theirs.client.get("/staff/", headers={"HX-Request": "true"})
    assert htmx.status_code == 204 and htmx.headers["HX-Redirect"].startswith("/auth/login")

    blocked = new_browser().sign_in_password(person)
    assert blocked.status_code == 422
    assert "do not match an active account" in text_of(blocked)

    enabled = as_admin.post(f"/staff/{person.id}/enable", {"password": admin.password},
                            page=f"/staff/{person.id}")
    assert enabled.status_code == 303
    assert "Sunil Desk's account is enabled again." in text_of(as_admin.get(f"/staff/{person.id}"))
    assert account(sql, person.id).disabled_at is None

    forget_used_code(sql, person)
    back = new_browser()
    back.sign_in(person)
    assert back.get("/").status_code == 200

    assert events(sql, "user_disabled", person.id) == [(person.id, admin.id, None)]
    assert events(sql, "user_enabled", person.id) == [(person.id, admin.id, None)]


def test_enable_needs_the_admins_password(as_admin, factory, clinic, sql):
    person = factory.person(clinic, Role.NURSE)
    sql("UPDATE staff_user SET disabled_at = now() WHERE id = :id", id=person.id)
    response = as_admin.post(f"/staff/{person.id}/enable", {"password": "wrong wrong wrong"},
                             page=f"/staff/{person.id}")
    assert response.status_code == 422
    assert "Your password is not correct." in text_of(response)
    assert account(sql, person.id).disabled_at is not None
    assert events(sql, "user_enabled", person.id) == []


def test_wrong_reauth_passwords_are_limited_per_user(as_admin, admin, factory, clinic, new_browser, sql):
    """Guessing the admin's password through the confirm box stops after 10 tries in 15 minutes."""
    person = factory.person(clinic, Role.NURSE)
    as_admin.get(f"/staff/{person.id}")
    for _ in range(10):
        assert as_admin.post(f"/staff/{person.id}/disable", {"password": "guessing again"}).status_code == 422
    locked = as_admin.post(f"/staff/{person.id}/disable", {"password": admin.password})
    assert locked.status_code == 429 and "Too many wrong passwords" in text_of(locked)
    assert account(sql, person.id).disabled_at is None


def test_strangers_failed_sign_ins_do_not_stop_an_admin_acting(as_admin, admin, factory, clinic, new_browser, sql):
    person = factory.person(clinic, Role.NURSE)
    stranger = new_browser()
    for _ in range(12):
        stranger.sign_in_password(admin, password="not the admin's password")
    page_url = f"/staff/{person.id}"
    assert as_admin.post(f"{page_url}/disable", {"password": admin.password}, page=page_url).status_code == 303
    assert account(sql, person.id).disabled_at is not None


# --- Resetting the authenticator -----------------------------------------------------------------

def test_reset_mfa_needs_the_admins_password(as_admin, factory, clinic, sql):
    person = factory.person(clinic, Role.DOCTOR)
    response = as_admin.post(f"/staff/{person.id}/reset-mfa", {"password": "definitely wrong"},
                             page=f"/staff/{person.id}")
    assert response.status_code == 422
    assert "Your password is not correct." in text_of(response)
    after = account(sql, person.id)
    assert after.mfa_enrolled_at is not None and after.totp_secret_enc is not None
    assert events(sql, "mfa_reset", person.id) == []


def test_reset_mfa_ends_sessions_and_next_sign_in_enrols_a_new_secret(
        as_admin, admin, factory, clinic, new_browser, sql):
    person = factory.person(clinic, Role.DOCTOR, name="Dr Lost Phone")
    theirs = new_browser()
    theirs.sign_in(person)
    assert theirs.get("/").status_code == 200

    response = as_admin.post(f"/staff/{person.id}/reset-mfa", {"password": admin.password},
                             page=f"/staff/{person.id}")
    assert response.status_code == 303
    shown = as_admin.get(f"/staff/{person.id}")
    assert "authenticator was removed" in text_of(shown)
    assert staff_row(as_admin.get("/staff/"), "Dr Lost Phone")[3] == "Not yet set up"
    after = account(sql, person.id)
    assert after.mfa_enrolled_at is None and after.totp_secret_enc is None
    assert sql("SELECT count(*) FROM recovery_code WHERE user_id = :u", u=person.id)[0][0] == 0
    assert sessions_of(sql, person.id) == 0
    assert theirs.get("/").headers["Location"].startswith("/auth/login")
    assert events(sql, "mfa_reset", person.id) == [(person.id, admin.id, None)]

    again = new_browser()
    signed = again.sign_in_password(person)
    assert signed.status_code == 303 and signed.headers["Location"] == "/auth/enrol"
    new_secret = enrol_secret_from(again.get("/auth/enrol"))
    assert new_secret != person.secret

    # the old authenticator's codes no longer work, wherever they are typed
    old_at_enrol = again.post("/auth/enrol", {"code": person.code(offset=1)})
    assert old_at_enrol.status_code == 422
    assert again.get("/").status_code == 303

    confirmed = again.post("/auth/enrol", {"code": pyotp.TOTP(new_secret).now()})
    assert confirmed.status_code == 200
    assert again.get("/").status_code == 200


def test_old_code_on_the_mfa_step_after_reset_is_refused(as_admin, admin, factory, clinic, new_browser, sql):
    """A tab left on the code page (or a scripted client) posts an old code after the reset."""
    person = factory.person(clinic, Role.NURSE)
    as_admin.post(f"/staff/{person.id}/reset-mfa", {"password": admin.password}, page=f"/staff/{person.id}")

    theirs = new_browser()
    theirs.sign_in_password(person)
    theirs.get("/auth/enrol")
    response = theirs.post("/auth/mfa", {"code": person.code()})
    assert response.status_code in (303, 422)
    if response.status_code == 303:
        assert response.headers["Location"] == "/auth/enrol"
    assert theirs.get("/").status_code == 303
    assert account(sql, person.id).mfa_enrolled_at is None


# --- Another clinic's staff ----------------------------------------------------------------------

def test_staff_of_another_clinic_are_not_found(as_admin, admin, factory, other_clinic, sql):
    outsider = factory.person(other_clinic, Role.RECEPTION, name="Outside Person")
    assert as_admin.get(f"/staff/{outsider.id}").status_code == 404
    assert "Outside Person" not in text_of(as_admin.get(f"/staff/{outsider.id}"))

    as_admin.get("/staff/")
    for action, data in (("role", {"role": "billing"}), ("disable", {"password": admin.password}),
                         ("enable", {"password": admin.password}), ("reset-mfa", {"password": admin.password})):
        assert as_admin.post(f"/staff/{outsider.id}/{action}", data).status_code == 404, action

    assert sql("SELECT role FROM membership WHERE user_id = :u", u=outsider.id) == [("reception",)]
    after = account(sql, outsider.id)
    assert after.disabled_at is None and after.mfa_enrolled_at is not None
    assert sql("SELECT count(*) FROM auth_event WHERE user_id = :u", u=outsider.id)[0][0] == 0


def test_unknown_staff_id_is_not_found(as_admin):
    assert as_admin.get("/staff/00000000-0000-7000-8000-000000000000").status_code == 404
    assert as_admin.get("/staff/not-a-uuid").status_code == 404


# --- What the auditor sees -----------------------------------------------------------------------

def test_every_staff_change_is_recorded_with_the_admin_as_actor(as_admin, admin, factory, clinic, sql):
    created = as_admin.post("/staff/new", {"full_name": "Audit Trail", "email": "trail@example.in",
                                           "role": "nurse"}, page="/staff/new")
    assert created.status_code == 200
    (user_id,) = sql("SELECT id FROM staff_user WHERE email = 'trail@example.in'")[0]
    sql("UPDATE staff_user SET mfa_enrolled_at = now() WHERE id = :id", id=user_id)

    page_url = f"/staff/{user_id}"
    assert as_admin.post(f"{page_url}/role", {"role": "doctor"}, page=page_url).status_code == 303
    assert as_admin.post(f"{page_url}/disable", {"password": "wrong password!"}, page=page_url).status_code == 422
    assert as_admin.post(f"{page_url}/disable", {"password": admin.password}, page=page_url).status_code == 303
    assert as_admin.post(f"{page_url}/enable", {"password": admin.password}, page=page_url).status_code == 303
    assert as_admin.post(f"{page_url}/reset-mfa", {"password": admin.password}, page=page_url).status_code == 303

    about_them = sql("SELECT kind, actor_user_id, ip::text FROM auth_event WHERE user_id = :u ORDER BY at",
                     u=user_id)
    assert [k for k, _, _ in about_them] == ["user_created", "membership_added", "role_changed", "user_disabled",
                                             "user_enabled", "mfa_reset"]
    assert all(actor == admin.id for _, actor, _ in about_them)
    assert all(ip for _, _, ip in about_them)
    (failed,) = sql("SELECT user_id, ip::text FROM auth_event WHERE kind = 'reauth_failed'")
    assert failed[0] == admin.id and failed[1]

    # and the admin's sign-in activity page names the admin as the one who did it
    activity = as_admin.get("/audit/sign-ins")
    rows = [r for r in page(activity).rows if len(r) == 6 and r[1] == "Audit Trail"]
    kinds = (AuthEventKind.USER_CREATED, AuthEventKind.MEMBERSHIP_ADDED, AuthEventKind.ROLE_CHANGED,
             AuthEventKind.USER_DISABLED, AuthEventKind.USER_ENABLED, AuthEventKind.MFA_RESET)
    assert [r[2] for r in rows] == [k.label for k in reversed(kinds)]  # newest first
    assert all(r[3] == "Asha Admin" for r in rows)
