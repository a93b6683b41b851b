# ruff: noqa: F811  (fixtures imported from tests/scheduling/conftest.py are redefined as arguments, as pytest means)
"""Prescriptions: the editor on the consultation (add and remove while a draft, 422 keeping input),
signing (numbered, sealed with a verification code, locked by the database), new versions and
"replaced", discarding a draft, the page and its PDF (same template; Hindi with the Devanagari font),
the public check of a printed code, and who may see any of it."""

import re
import uuid
import zlib
from datetime import timedelta

import pytest
import sqlalchemy

from app.auth.policy import Role
from app.clinical import prescriptions, rx_code, rx_text
from app.db import get_session, set_tenant, utcnow
from tests.conftest import patient_id
from tests.scheduling.conftest import HTMX, audit_since, doctor, high_water, setup, sign_in  # noqa: F401

REG_NO = "KMC/2011/48213"
DRUG = "Paracetamol"
ITEM = {"drug": DRUG, "strength": "500 mg", "form": "tablet", "dose": "1 tablet", "frequency": "1-0-1",
        "duration": "5 days", "timing": "after_food", "instructions": "Stop when the fever settles"}
SECOND = {"drug": "Cetirizine", "strength": "10 mg", "form": "tablet", "dose": "1 tablet", "frequency": "HS",
          "duration": "3 days", "timing": "", "instructions": ""}


# --- Set-up -----------------------------------------------------------------------------------------

@pytest.fixture
def registered(sql, doctor):
    sql("UPDATE staff_user SET registration_number = :r, registration_council = 'Karnataka Medical Council', "
        "qualifications = 'MBBS, MD (General Medicine)' WHERE id = :d", r=REG_NO, d=doctor.id)
    return doctor


@pytest.fixture
def doctor_browser(new_browser, doctor):
    browser = new_browser()
    browser.sign_in(doctor)
    return browser


def consultation(desk, setup, register, doctor_browser, **patient) -> tuple[str, str]:
    """A walk-in the doctor calls in from their queue: (patient id, encounter id)."""
    patient = patient_id(register(**patient))
    desk.post("/queue/walk-in", {"patient_id": patient, "doctor_id": str(setup.doctor_id), "type_id": "",
                                 "reason": "", "intent": "add"}, page="/queue/walk-in")
    response = doctor_browser.post(f"/queue/{setup.doctor_id}/next", {"mine": "1"}, page="/queue/mine")
    assert response.status_code == 303, response.get_data(as_text=True)[:500]
    return patient, re.search(r"/encounters/([0-9a-f-]{36})$", response.headers["Location"]).group(1)


@pytest.fixture
def seen(desk, setup, register, doctor_browser, registered):
    """An English-speaking patient in consultation with the (registered) doctor."""
    return consultation(desk, setup, register, doctor_browser, full_name="Kavya Iyer", language="en",
                        dob="1990-03-15", sex="F")


def add(browser, encounter, htmx=True, **fields):
    return browser.post(f"/encounters/{encounter}/prescription/items", {**ITEM, "next": f"/encounters/{encounter}",
                                                                       **fields},
                        page=f"/encounters/{encounter}", headers=HTMX if htmx else {})


def rows(sql):
    return sql("SELECT id::text, number, revision, status, version, code, language, replaces_id::text "
               "FROM prescription ORDER BY created_at")


def sign(browser, rx_id, version, htmx=True, **fields):
    data = {"version": str(version), "advice": "Drink plenty of fluids.", "language": "en", **fields}
    return browser.post(f"/prescriptions/{rx_id}/sign", data, page=f"/prescriptions/{rx_id}",
                        headers=HTMX if htmx else {})


@pytest.fixture
def signed(seen, doctor_browser, sql):
    """A signed prescription of two medicines: (patient id, encounter id, prescription id)."""
    patient, encounter = seen
    add(doctor_browser, encounter)
    add(doctor_browser, encounter, **SECOND)
    rx_id, _, _, _, version, *_ = rows(sql)[0]
    assert sign(doctor_browser, rx_id, version).status_code == 200
    return patient, encounter, rx_id


# --- PDF text, read back from the file itself ----------------------------------------------------------

def pdf_objects(pdf: bytes) -> dict[int, tuple[bytes, bytes | None]]:
    """Every object of a PDF as (dictionary, decompressed stream or None), object streams unpacked."""
    found, pos, head = {}, 0, re.compile(rb"(\d+) 0 obj")
    while match := head.search(pdf, pos):
        start, end = match.end(), pdf.find(b"endobj", match.end())
        stream = pdf.find(b"stream", start)
        if 0 <= stream < end:
            length = int(re.search(rb"/Length (\d+)", pdf[start:stream])[1])
            begin = stream + 6 + (2 if pdf[stream + 6:stream + 8] == b"\r\n" else 1)
            data = pdf[begin:begin + length]
            found[int(match[1])] = (pdf[start:stream], zlib.decompress(data) if b"Flate" in pdf[start:stream]
                                    else data)
            pos = pdf.find(b"endobj", begin + length) + 6
        else:
            found[int(match[1])] = (pdf[start:end], None)
            pos = end + 6
    for head_dict, data in list(found.values()):
        if b"/ObjStm" in head_dict:
            first = int(re.search(rb"/First (\d+)", head_dict)[1])
            numbers = [int(n) for n in data[:first].split()]
            offsets = list(zip(numbers[::2], numbers[1::2], strict=True))
            for i, (num, offset) in enumerate(offsets):
                stop = offsets[i + 1][1] if i + 1 < len(offsets) else len(data) - first
                found[num] = (data[first + offset:first + stop], None)
    return found


def pdf_text(pdf: bytes) -> tuple[str, set[str]]:
    """The text a reader extracts (through each font's ToUnicode map) and the embedded fonts' names."""
    objects = pdf_objects(pdf)
    maps, names = {}, set()
    for num, (body, _) in objects.items():
        if b"/Type0" in body:
            names.add(re.search(rb"/BaseFont /([^\s/]+)", body)[1].decode())
            cmap = objects[int(re.search(rb"/ToUnicode (\d+) 0 R", body)[1])][1].decode()
            pairs = re.findall(r"<([0-9a-f]+)> <([0-9a-f]*)>", cmap.split("beginbfchar", 1)[-1])
            maps[num] = {int(g, 16): bytes.fromhex(u).decode("utf-16-be") for g, u in pairs}
    resources = {}
    for body, _ in objects.values():
        if match := re.search(rb"/Font (\d+) 0 R", body):
            fonts = objects[int(match[1])][0]
            resources.update({name.decode(): int(num) for name, num in re.findall(rb"/(\w+) (\d+) 0 R", fonts)})
    text = []
    for body, data in objects.values():
        if data is None or b"BT" not in data or b"/Type" in body:
            continue
        font = None
        for token in re.finditer(rb"/(\w+) [\d.]+ Tf|\[(.*?)\] TJ|(ET)", data, re.S):
            if token[1]:
                font = maps.get(resources.get(token[1].decode()), {})
            elif token[2] is not None:
                for run in re.findall(rb"<([0-9a-f]*)>", token[2]):
                    text += [font.get(int(run[i:i + 4], 16), "") for i in range(0, len(run), 4)]
            else:
                text.append("\n")
    return "".join(text), names


# --- Items ------------------------------------------------------------------------------------------

def test_item_line_reads_as_one_line():
    assert prescriptions.item_line({**ITEM, "instructions": ""}) == \
        "Paracetamol 500 mg tablet — 1 tablet 1-0-1 after food \N{MULTIPLICATION SIGN} 5 days"
    assert prescriptions.item_line({"drug": "ORS", "dose": "1 sachet", "frequency": "SOS", "timing": "any_time"}) == \
        "ORS — 1 sachet SOS"


def test_structured_parts_translate_and_free_text_stays_as_typed():
    hindi, kannada = rx_text.Text("hi"), rx_text.Text("kn")
    assert str(hindi.frequency("1-0-1")) == "सुबह 1, रात 1 / 1-0-1 (morning 1, night 1)"
    assert str(hindi.frequency("bd")) == "दिन में दो बार / BD (twice a day)"
    assert str(hindi.frequency("every 6 hours")) == "every 6 hours"
    assert str(hindi.duration("1 month")) == "1 महीना / 1 month" and str(hindi.duration("2 wks")) == "2 हफ़्ते / 2 weeks"
    assert str(hindi.dose("2 tabs")) == "2 गोली / 2 tablets" and str(hindi.dose("as directed")) == "as directed"
    assert str(hindi.timing("empty_stomach")) == "खाली पेट / on an empty stomach"
    assert kannada.language == "en" and str(kannada.timing("after_food")) == "after food"  # no Kannada yet
    assert hindi.timing("after_food").__html__() == \
        '<span lang="hi">खाने के बाद</span> <span class="rx-en">after food</span>'


def test_a_medicine_needs_drug_dose_and_frequency(seen, doctor_browser, sql):
    _, encounter = seen
    refused = add(doctor_browser, encounter, drug="", dose=" ", frequency="", strength="650 mg")
    body = refused.get_data(as_text=True)
    assert refused.status_code == 422 and "<html" not in body and 'id="prescription"' in body
    assert "Name the medicine." in body and "Give the dose" in body and "Say how often" in body
    assert 'value="650 mg"' in body and 'value="Stop when the fever settles"' in body
    plain = add(doctor_browser, encounter, htmx=False, drug="")
    assert plain.status_code == 422 and "<html" in plain.get_data(as_text=True)
    assert "Name the medicine." in plain.get_data(as_text=True)
    wrong_timing = add(doctor_browser, encounter, timing="midnight")
    assert wrong_timing.status_code == 422 and "Choose when to take it" in wrong_timing.get_data(as_text=True)
    assert rows(sql) == []


def test_add_and_remove_medicines_while_a_draft(seen, doctor_browser, sql):
    _, encounter = seen
    first = add(doctor_browser, encounter, frequency="bd")
    body = first.get_data(as_text=True)
    assert first.status_code == 200 and "<html" not in body and "Paracetamol" in body and ">BD<" in body
    [(rx_id, number, revision, status, version, code, language, _)] = rows(sql)
    assert (number, revision, status, code, language) == (0, 1, "draft", None, "en")
    plain = add(doctor_browser, encounter, htmx=False, **SECOND)
    assert plain.status_code == 303 and plain.headers["Location"] == f"/encounters/{encounter}"
    version = rows(sql)[0][4]
    page = f"/prescriptions/{rx_id}"
    removed = doctor_browser.post(f"{page}/items/remove", {"index": "0", "version": str(version),
                                                           "next": f"/encounters/{encounter}"}, page=page, headers=HTMX)
    assert removed.status_code == 200
    assert "Cetirizine" in removed.get_data(as_text=True) and DRUG not in removed.get_data(as_text=True)
    stale = doctor_browser.post(f"{page}/items/remove", {"index": "0", "version": str(version)}, page=page,
                                headers=HTMX)
    assert stale.status_code == 409 and "another window" in stale.get_data(as_text=True)
    # Sealed: the drug names are not in the database in the clear.
    assert sql("SELECT count(*) FROM prescription WHERE position('Cetirizine'::bytea IN items_enc) > 0") == [(0,)]
    assert sql("SELECT count(*) FROM timeline_event WHERE kind = 'prescription'") == [(0,)]


def test_advice_and_language_are_saved_with_the_draft(seen, doctor_browser, sql):
    _, encounter = seen
    add(doctor_browser, encounter)
    rx_id = rows(sql)[0][0]
    data = {"advice": "Rest for two days", "language": "hi", "next": f"/encounters/{encounter}"}
    saved = doctor_browser.post(f"/prescriptions/{rx_id}/advice", data, page=f"/encounters/{encounter}", headers=HTMX)
    body = saved.get_data(as_text=True)
    assert saved.status_code == 200 and "<html" not in body and "Rest for two days</textarea>" in body
    assert '<option value="hi" selected>' in body and rows(sql)[0][6] == "hi"
    plain = doctor_browser.post(f"/prescriptions/{rx_id}/advice", {**data, "advice": "x" * 2001},
                                page=f"/encounters/{encounter}")
    assert plain.status_code == 409 and "2000 characters" in plain.get_data(as_text=True)
    plain = doctor_browser.post(f"/prescriptions/{rx_id}/advice", {**data, "language": "en"},
                                page=f"/encounters/{encounter}")
    assert plain.status_code == 303 and rows(sql)[0][6] == "en"


def test_the_draft_page_previews_it_with_the_editor(seen, doctor_browser, sql):
    _, encounter = seen
    add(doctor_browser, encounter)
    rx_id = rows(sql)[0][0]
    page = doctor_browser.get(f"/prescriptions/{rx_id}").get_data(as_text=True)
    assert "Draft: not valid" in page and "DRAFT: not a valid prescription" in page and "Add medicine" in page
    assert f'name="next" value="/prescriptions/{rx_id}"' in page
    assert doctor_browser.client.get(f"/prescriptions/{rx_id}.pdf").status_code == 409


# --- Signing ---------------------------------------------------------------------------------------

def test_signing_numbers_seals_and_locks(signed, doctor_browser, sql, owner_engine, app):
    _, encounter, rx_id = signed
    [(_, number, revision, status, _, code, language, _)] = rows(sql)
    assert (number, revision, status, language) == (1, 1, "signed", "en")
    assert re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{12}", code)
    assert sql("SELECT kind, action, ref_id::text, doctor_id IS NOT NULL FROM timeline_event "
               "WHERE kind = 'prescription'") == [("prescription", "signed", rx_id, True)]
    assert sql("SELECT count(*) FROM audit_event WHERE action = 'prescription.sign' AND object_id = :r",
               r=rx_id) == [(1,)]
    panel = doctor_browser.get(f"/encounters/{encounter}").get_data(as_text=True)
    assert "No. 1, version 1" in panel and "Valid" in panel and "Change (new version)" in panel
    assert "Drink plenty of fluids." in panel
    page = f"/prescriptions/{rx_id}"
    for url, data in [(f"{page}/items/remove", {"index": "0", "version": "99"}), (f"{page}/advice", {"advice": "x"}),
                      (f"{page}/sign", {"version": "3"}), (f"{page}/discard", {})]:
        refused = doctor_browser.post(url, data, page=page, headers=HTMX)
        assert refused.status_code == 409, url
        assert "signed and can no longer be changed" in refused.get_data(as_text=True)
    more = add(doctor_browser, encounter)
    assert more.status_code == 409 and "new version" in more.get_data(as_text=True)
    assert rows(sql)[0][3:6] == ("signed", rows(sql)[0][4], code)
    # The database itself refuses: as the owner, and as the app's own role through the ORM.
    with pytest.raises(sqlalchemy.exc.DBAPIError, match="locked"), owner_engine.begin() as conn:
        conn.execute(sqlalchemy.text("UPDATE prescription SET language = 'hi'"))
    with pytest.raises(sqlalchemy.exc.DBAPIError, match="never deleted"), owner_engine.begin() as conn:
        conn.execute(sqlalchemy.text("DELETE FROM prescription"))
    with app.app_context():
        db = get_session()
        set_tenant(db, clinic_id=uuid.UUID(sql("SELECT clinic_id::text FROM prescription")[0][0]), user_id=None)
        from app.clinical.models import Prescription

        row = db.scalar(sqlalchemy.select(Prescription))
        row.advice_enc = None
        with pytest.raises(sqlalchemy.exc.DBAPIError, match="locked"):
            db.flush()
        db.rollback()


def test_signing_without_a_registration_number_is_refused(seen, doctor_browser, sql, doctor):
    _, encounter = seen
    sql("UPDATE staff_user SET registration_number = NULL WHERE id = :d", d=doctor.id)
    add(doctor_browser, encounter)
    rx_id, *_, version, _, _, _ = rows(sql)[0]
    refused = sign(doctor_browser, rx_id, version, advice="Rest")
    body = refused.get_data(as_text=True)
    assert refused.status_code == 409 and "registration number" in body and "clinic admin" in body
    assert rows(sql)[0][3] == "draft"
    assert sql("SELECT advice_enc IS NULL FROM prescription") == [(True,)]  # the whole change rolled back
    plain = sign(doctor_browser, rx_id, version, htmx=False)
    assert plain.status_code == 409 and "<html" in plain.get_data(as_text=True)


def test_sign_without_javascript_returns_to_the_consultation(seen, doctor_browser, sql):
    _, encounter = seen
    add(doctor_browser, encounter)
    rx_id, *_, version, _, _, _ = rows(sql)[0]
    response = sign(doctor_browser, rx_id, version, htmx=False, next=f"/encounters/{encounter}")
    assert response.status_code == 303 and response.headers["Location"] == f"/encounters/{encounter}"
    assert rows(sql)[0][3] == "signed"


def test_a_draft_blocks_signing_the_consultation_until_discarded(seen, doctor_browser, sql):
    _, encounter = seen
    add(doctor_browser, encounter)
    rx_id = rows(sql)[0][0]
    discarded = doctor_browser.post(f"/prescriptions/{rx_id}/discard", {"next": f"/encounters/{encounter}"},
                                    page=f"/encounters/{encounter}", headers=HTMX)
    assert discarded.status_code == 200 and "Add a medicine" in discarded.get_data(as_text=True)
    assert rows(sql) == []
    assert sql("SELECT action FROM audit_event WHERE action LIKE 'prescription.%' ORDER BY seq") == [
        ("prescription.item_add",), ("prescription.discard",)]
    # From the draft's own page, without JavaScript: back to the consultation (the page is gone).
    add(doctor_browser, encounter)
    rx_id = rows(sql)[0][0]
    gone = doctor_browser.post(f"/prescriptions/{rx_id}/discard", {"next": f"/prescriptions/{rx_id}"},
                               page=f"/prescriptions/{rx_id}")
    assert gone.status_code == 303 and gone.headers["Location"] == f"/encounters/{encounter}"


# --- New versions -----------------------------------------------------------------------------------

def test_a_new_version_replaces_the_signed_one(signed, doctor_browser, sql, desk, setup, register):
    _, encounter, old = signed
    page = f"/prescriptions/{old}"
    assert "Change (new version)" in doctor_browser.get(page).get_data(as_text=True)
    revise = doctor_browser.post(f"{page}/revise", {}, page=page)
    assert revise.status_code == 303
    draft = revise.headers["Location"].rsplit("/", 1)[1]
    assert rows(sql)[1][:4] == (draft, 1, 2, "draft") and rows(sql)[1][7] == old
    again = doctor_browser.post(f"{page}/revise", {}, page=page)
    assert again.headers["Location"] == f"/prescriptions/{draft}"  # the same draft, not a second one
    editor = doctor_browser.get(f"/prescriptions/{draft}").get_data(as_text=True)
    assert "Draft: version 2 of no. 1" in editor and "Cetirizine" in editor and "Drink plenty of fluids." in editor
    assert "Replaced by" not in doctor_browser.get(page).get_data(as_text=True)  # a draft replaces nothing yet
    version = rows(sql)[1][4]
    doctor_browser.post(f"/prescriptions/{draft}/items/remove", {"index": "1", "version": str(version)},
                        page=f"/prescriptions/{draft}")
    assert sign(doctor_browser, draft, rows(sql)[1][4], htmx=False, next=f"/prescriptions/{draft}").status_code == 303
    assert [r[1:4] for r in rows(sql)] == [(1, 1, "signed"), (1, 2, "signed")]
    old_page = doctor_browser.get(page).get_data(as_text=True)
    assert "Replaced by version 2" in old_page and "no longer valid" in old_page
    assert "Change (new version)" not in old_page
    panel = doctor_browser.get(f"/encounters/{encounter}").get_data(as_text=True)
    assert "Replaced by version 2" in panel and "No. 1, version 2" in panel
    refused = doctor_browser.post(f"{page}/revise", {}, page=f"/prescriptions/{draft}")
    assert refused.status_code == 409 and "already replaced by version 2" in refused.get_data(as_text=True)
    from_panel = doctor_browser.post(f"/prescriptions/{draft}/revise", {"next": f"/encounters/{encounter}"},
                                     page=f"/encounters/{encounter}", headers=HTMX)
    assert from_panel.status_code == 200 and "Draft: version 3 of no. 1" in from_panel.get_data(as_text=True)
    doctor_browser.post(f"/prescriptions/{rows(sql)[2][0]}/discard", {}, page=f"/encounters/{encounter}")
    # The next prescription of the clinic, in another consultation, takes the next number.
    _, other = consultation(desk, setup, register, doctor_browser, full_name="Arjun Menon", language="en")
    add(doctor_browser, other)
    rx3 = rows(sql)[2]
    assert rx3[1:4] == (0, 1, "draft")
    sign(doctor_browser, rx3[0], rx3[4])
    assert rows(sql)[2][1:4] == (2, 1, "signed")


def test_a_signed_consultation_takes_new_versions_but_no_new_prescription(signed, doctor_browser, sql):
    _, encounter, rx_id = signed
    sql("UPDATE encounter SET status = 'signed', signed_at = now()")
    refused = add(doctor_browser, encounter, drug="Ibuprofen")
    assert refused.status_code == 409
    revise = doctor_browser.post(f"/prescriptions/{rx_id}/revise", {}, page=f"/prescriptions/{rx_id}")
    draft = revise.headers["Location"].rsplit("/", 1)[1]
    added = add(doctor_browser, encounter, htmx=False, drug="Ibuprofen", next=f"/prescriptions/{draft}")
    assert added.status_code == 303 and added.headers["Location"] == f"/prescriptions/{draft}"
    signed_now = sign(doctor_browser, draft, rows(sql)[1][4], next=f"/prescriptions/{draft}")
    assert signed_now.status_code == 204 and signed_now.headers["HX-Redirect"] == f"/prescriptions/{draft}"
    assert [r[1:4] for r in rows(sql)] == [(1, 1, "signed"), (1, 2, "signed")]
    assert "Ibuprofen" in doctor_browser.get(f"/prescriptions/{draft}").get_data(as_text=True)


# --- The page and the PDF ---------------------------------------------------------------------------

def test_the_page_shows_the_document_with_its_code(signed, doctor_browser, sql):
    _, _, rx_id = signed
    mark = high_water(sql)
    response = doctor_browser.get(f"/prescriptions/{rx_id}")
    page = response.get_data(as_text=True)
    code = rx_code.grouped(rows(sql)[0][5])
    assert response.status_code == 200 and REG_NO in page and "Karnataka Medical Council" in page
    assert "MBBS, MD (General Medicine)" in page and "Kavya Iyer" in page and "MRN-" in page
    assert code in page and "<svg" in page and "data-print" in page and "Download PDF" in page
    assert f"/rx/{sql('SELECT clinic_id::text FROM prescription')[0][0]}/{rx_id}?code=" in page
    assert "1-0-1 (morning 1, night 1)" in page and "after food" in page and "Stop when the fever settles" in page
    assert "Sunrise Clinic" in page and "1 MG Road" in page
    assert " style=" not in page and "<script>" not in page
    assert [a[:2] for a in audit_since(sql, mark)] == [("prescription.view", "allowed")]
    fragment = doctor_browser.get(f"/prescriptions/{rx_id}", headers=HTMX)
    assert "<html" not in fragment.get_data(as_text=True) and code in fragment.get_data(as_text=True)
    assert "HX-Request" in fragment.headers["Vary"]


def test_the_pdf_is_the_document(signed, doctor_browser, sql):
    _, _, rx_id = signed
    mark = high_water(sql)
    response = doctor_browser.client.get(f"/prescriptions/{rx_id}.pdf")
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    assert response.headers["Content-Disposition"] == 'attachment; filename="prescription-1-v1.pdf"'
    assert response.headers["Cache-Control"] == "no-store"
    pdf = response.get_data()
    assert pdf.startswith(b"%PDF-")
    text, fonts = pdf_text(pdf)
    code = rx_code.grouped(rows(sql)[0][5])
    assert REG_NO in text and code in text and "Kavya Iyer" in text and "Paracetamol" in text
    assert "Drink plenty of fluids." in text and "Cetirizine" in text
    assert any("Rx-Noto-Sans" in name for name in fonts)
    assert pdf_text(doctor_browser.client.get(f"/prescriptions/{rx_id}.pdf").get_data())[0] == text
    assert [a[:2] for a in audit_since(sql, mark)] == [("prescription.download", "allowed")] * 2


def test_a_hindi_prescription_prints_in_devanagari(desk, setup, register, doctor_browser, registered, sql):
    _, encounter = consultation(desk, setup, register, doctor_browser, full_name="Sunita Devi Sharma", language="hi")
    add(doctor_browser, encounter, dose="1 tab", duration="5 days")
    rx_id, *_, version, _, language, _ = rows(sql)[0]
    assert language == "hi"
    sign(doctor_browser, rx_id, version, language="hi", advice="आराम करें")
    page = doctor_browser.get(f"/prescriptions/{rx_id}").get_data(as_text=True)
    assert "खाने के बाद" in page and "after food" in page and "सुबह 1, रात 1" in page and "5 दिन" in page
    assert "1 गोली" in page and "सलाह" in page and "Stop when the fever settles" in page
    text, fonts = pdf_text(doctor_browser.client.get(f"/prescriptions/{rx_id}.pdf").get_data())
    assert any(name.endswith("+Rx-Noto-Sans-Devanagari") for name in fonts), fonts
    assert "खाने के बाद" in text and "आराम करें" in text and "after food" in text and REG_NO in text


# --- The public check -------------------------------------------------------------------------------

def check(new_browser, clinic_id, rx_id, code):
    return new_browser().get(f"/rx/{clinic_id}/{rx_id}?code={code}")


def test_a_genuine_code_checks_out_without_signing_in(signed, new_browser, sql, other_clinic, doctor_browser):
    _, _, rx_id = signed
    clinic_id, code = sql("SELECT clinic_id::text, code FROM prescription")[0]
    mark = high_water(sql)
    response = check(new_browser, clinic_id, rx_id, rx_code.grouped(code).lower())
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and "Genuine prescription" in page and "Dr Meera Rao" in page
    assert REG_NO in page and "K. I." in page and "Kavya Iyer" not in page and "MRN-" not in page
    assert "2 medicines" in page and prescriptions.item_line({**ITEM}) in page and "current version" in page
    nomatch = "This code does not match a prescription"
    for url_clinic, url_rx, typed in [(clinic_id, rx_id, "7KQ2-9XHM-P4TA"), (str(other_clinic.id), rx_id, code),
                                      (str(uuid.uuid4()), rx_id, code), (clinic_id, str(uuid.uuid4()), code),
                                      (clinic_id, rx_id, "")]:
        refused = check(new_browser, url_clinic, url_rx, typed)
        assert refused.status_code == 404 and nomatch in refused.get_data(as_text=True)
        assert "Dr Meera Rao" not in refused.get_data(as_text=True)
    assert audit_since(sql, mark)[0][:3] == ("prescription.verify", "allowed", sql("SELECT patient_id::text "
                                                                                    "FROM prescription")[0][0])
    assert sql("SELECT count(*) FROM audit_event WHERE seq > :m AND user_id IS NULL AND outcome = 'denied'",
               m=mark) == [(4,)]  # in each clinic's own trail; an unknown clinic has none to write to
    # Someone signed in (here the doctor) checks it the same way; the trail then names them.
    mine = doctor_browser.get(f"/rx/{clinic_id}/{rx_id}?code={code}")
    assert mine.status_code == 200 and "Genuine prescription" in mine.get_data(as_text=True)


def test_an_altered_record_no_longer_matches(signed, new_browser, sql, app):
    _, _, rx_id = signed
    clinic_id, code = sql("SELECT clinic_id::text, code FROM prescription")[0]
    # The printed content re-sealed with other items, the way only someone holding the keys could: it
    # decrypts, but no longer yields the code (the trigger allows re-sealing under a newer key version).
    with app.app_context():
        from app.security.fields import keyring

        db = get_session()
        set_tenant(db, clinic_id=uuid.UUID(clinic_id), user_id=None)
        forged = keyring(db, uuid.UUID(clinic_id)).seal("prescription", "printed", uuid.UUID(rx_id),
                                                        '{"items": [{"drug": "Alprazolam", "dose": "2 tablets"}]}')
        db.rollback()
    # The database's own guard refuses this; someone who can lift it (the owner) is caught by the code.
    sql("ALTER TABLE prescription DISABLE TRIGGER prescription_guard")
    sql("UPDATE prescription SET printed_enc = :b, key_version = key_version + 1", b=forged)
    assert check(new_browser, clinic_id, rx_id, code).status_code == 404
    # A flipped byte in the sealed content does not even decrypt.
    sql("UPDATE prescription SET printed_enc = overlay(printed_enc placing '\\x00'::bytea from 40 for 1), "
        "key_version = key_version + 1")
    sql("ALTER TABLE prescription ENABLE TRIGGER prescription_guard")
    response = check(new_browser, clinic_id, rx_id, code)
    assert response.status_code == 404 and "does not match" in response.get_data(as_text=True)


def test_a_draft_has_no_valid_code_and_guessing_is_limited(seen, doctor_browser, new_browser, sql):
    _, encounter = seen
    add(doctor_browser, encounter)
    rx_id = rows(sql)[0][0]
    clinic_id = sql("SELECT clinic_id::text FROM prescription")[0][0]
    assert check(new_browser, clinic_id, rx_id, "").status_code == 404
    guesser = new_browser()
    for i in range(rx_code.VERIFY_FAILURES - 1):
        assert guesser.get(f"/rx/{clinic_id}/{rx_id}?code=AAAA-AAAA-{i:04d}").status_code == 404
    limited = guesser.get(f"/rx/{clinic_id}/{rx_id}?code=AAAA-AAAA-ZZZZ")
    assert limited.status_code == 429 and "Too many attempts" in limited.get_data(as_text=True)


def test_code_guesses_from_one_ipv6_64_share_one_bucket(seen, doctor_browser, new_browser, sql):
    _, encounter = seen
    add(doctor_browser, encounter)
    rx_id = rows(sql)[0][0]
    clinic_id = sql("SELECT clinic_id::text FROM prescription")[0][0]
    url = f"/rx/{clinic_id}/{rx_id}?code=AAAA-AAAA-ZZZZ"
    for n in range(rx_code.VERIFY_FAILURES):
        assert new_browser().get(url, environ_base={"REMOTE_ADDR": f"2001:db8:5:7::{n + 1:x}"}).status_code == 404
    assert new_browser().get(url, environ_base={"REMOTE_ADDR": "2001:db8:5:7:ab:cd:ef:99"}).status_code == 429
    assert new_browser().get(url, environ_base={"REMOTE_ADDR": "2001:db8:5:8::1"}).status_code == 404


# --- Who may see it ---------------------------------------------------------------------------------

@pytest.mark.parametrize("role", [Role.RECEPTION, Role.BILLING, Role.AUDITOR, Role.ADMIN])
def test_non_clinical_roles_never_see_a_prescription(signed, sign_in, sql, role):
    patient, encounter, rx_id = signed
    browser = sign_in(role)
    mark = high_water(sql)
    for url in (f"/prescriptions/{rx_id}", f"/prescriptions/{rx_id}.pdf"):
        response = browser.get(url)
        assert response.status_code == 403 and DRUG not in response.get_data(as_text=True)
    browser.get("/auth/account")  # a page with a CSRF token and nothing clinical
    for url, data in [(f"/encounters/{encounter}/prescription/items", ITEM),
                      (f"/prescriptions/{rx_id}/revise", {}), (f"/prescriptions/{rx_id}/sign", {"version": "1"}),
                      (f"/prescriptions/{rx_id}/discard", {})]:
        response = browser.post(url, data)
        assert response.status_code == 403 and DRUG not in response.get_data(as_text=True)
    assert all(a[1] == "denied" for a in audit_since(sql, mark)) and len(audit_since(sql, mark)) == 6
    if role in (Role.RECEPTION, Role.BILLING, Role.ADMIN):
        assert DRUG not in browser.get(f"/patients/{patient}").get_data(as_text=True)
    assert rows(sql)[0][3] == "signed" and len(rows(sql)) == 1


def test_a_nurse_reads_only_with_a_break_the_glass_grant(signed, sql, app, factory, clinic):
    patient, _, rx_id = signed
    nurse = factory.person(clinic, Role.NURSE, name="Nisha Nurse")
    from tests.conftest import Browser

    browser = Browser(app.test_client())
    browser.sign_in(nurse)
    mark = high_water(sql)
    refused = browser.get(f"/prescriptions/{rx_id}")
    assert refused.status_code == 403 and DRUG not in refused.get_data(as_text=True)
    assert "care relationship" in refused.get_data(as_text=True)
    assert [a[:2] for a in audit_since(sql, mark)] == [("prescription.view", "denied")]
    with app.app_context():
        from app.patients.break_glass import open_grant

        db = get_session()
        set_tenant(db, clinic_id=clinic.id, user_id=nurse.id)
        open_grant(db, clinic_id=clinic.id, user_id=nurse.id, patient_id=uuid.UUID(patient),
                   reason="Patient collapsed in the waiting area")
        db.commit()
    mark = high_water(sql)
    page = browser.get(f"/prescriptions/{rx_id}")
    assert page.status_code == 200 and DRUG in page.get_data(as_text=True)
    assert "Change (new version)" not in page.get_data(as_text=True)
    assert browser.client.get(f"/prescriptions/{rx_id}.pdf").status_code == 200
    assert [(a[0], a[1], a[5]) for a in audit_since(sql, mark)] == [
        ("prescription.view", "allowed", True), ("prescription.download", "allowed", True)]
    browser.get(f"/prescriptions/{rx_id}")
    writes = browser.post(f"/prescriptions/{rx_id}/revise", {})
    assert writes.status_code == 403


def test_another_doctor_cannot_write_in_the_consultation(signed, factory, clinic, app, sql):
    _, encounter, rx_id = signed
    from tests.conftest import Browser

    other = factory.person(clinic, Role.DOCTOR, name="Dr Someone Else")
    browser = Browser(app.test_client())
    browser.sign_in(other)
    assert browser.get(f"/prescriptions/{rx_id}").status_code == 403  # no care relationship
    browser.get("/auth/account")
    assert browser.post(f"/encounters/{encounter}/prescription/items", ITEM).status_code == 403
    assert browser.post(f"/prescriptions/{rx_id}/revise", {}).status_code == 403
    assert len(rows(sql)) == 1


def test_break_the_glass_expires(signed, sql, app, factory, clinic):
    patient, _, rx_id = signed
    from tests.conftest import Browser

    nurse = factory.person(clinic, Role.NURSE, name="Nisha Nurse")
    browser = Browser(app.test_client())
    browser.sign_in(nurse)
    sql("INSERT INTO break_glass (clinic_id, id, user_id, patient_id, reason, started_at, expires_at) "
        "VALUES (:c, gen_random_uuid(), :u, :p, 'an emergency', :s, :e)", c=clinic.id, u=nurse.id, p=patient,
        s=utcnow() - timedelta(hours=2), e=utcnow() - timedelta(hours=1))
    assert browser.get(f"/prescriptions/{rx_id}").status_code == 403


def test_a_later_correction_changes_neither_the_paper_nor_its_code(signed, doctor_browser, new_browser, sql):
    _, _, rx_id = signed
    clinic_id, code = sql("SELECT clinic_id::text, code FROM prescription")[0]
    sql("UPDATE staff_user SET full_name = 'Dr Meera Rao-Kapoor', registration_number = 'KMC-99999' "
        "WHERE registration_number = :r", r=REG_NO)
    page = doctor_browser.get(f"/prescriptions/{rx_id}").get_data(as_text=True).split("<main", 1)[1]
    assert REG_NO in page and "KMC-99999" not in page and "Rao-Kapoor" not in page
    genuine = check(new_browser, clinic_id, rx_id, code)
    assert genuine.status_code == 200 and REG_NO in genuine.get_data(as_text=True)
