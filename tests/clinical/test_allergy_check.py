# ruff: noqa: F811  (fixtures imported from other test modules are redefined as arguments, as pytest means)
"""The allergy check at prescribing, over HTTP as the doctor: a medicine matching a recorded allergy (by class
or by name) is flagged where it is added and stops signing until the doctor states a reason (kept sealed with
the prescription, the override audited); medicines of one class together are warned about; "no known
allergies" and "not recorded" are different, and the prescription (page and PDF) prints which."""

import pytest

from app.clinical import allergy_check
from tests.clinical.test_prescriptions import (  # noqa: F401  (fixtures)
    ITEM,
    add,
    consultation,
    doctor_browser,
    pdf_text,
    registered,
    rows,
    seen,
    sign,
)
from tests.scheduling.conftest import HTMX, audit_since, doctor, high_water, setup, sign_in  # noqa: F401

REASON = "Took cotrimoxazole in 2024 without a reaction; the recorded allergy was to sulfasalazine."
COTRIMOXAZOLE = {**ITEM, "drug": "Cotrimoxazole", "strength": "800/160 mg", "frequency": "BD"}


def record_allergy(browser, patient, **fields):
    response = browser.post(f"/patients/{patient}/allergies", fields, page=f"/patients/{patient}/chart")
    assert response.status_code in (200, 303), response.get_data(as_text=True)[:300]


def writes_since(sql, mark) -> list[tuple]:
    """The audit records after `mark` but the page views (each form here is fetched before it is sent)."""
    return [a for a in audit_since(sql, mark) if a[0] != "prescription.view"]


def check(allergies: list[dict], *drugs: str) -> allergy_check.Review:
    status = allergy_check.Recorded("listed", tuple(allergy_check.allergen(a) for a in allergies))
    return allergy_check.review(status, [{"drug": d} for d in drugs])


# --- The table and the matching -----------------------------------------------------------------------

@pytest.mark.parametrize(("allergy", "drug"), [
    ("Sulfonamides", "Cotrimoxazole"), ("Sulpha drugs", "Co-trimoxazole DS"), ("Sulfa", "Sulphamethoxazole"),
    ("Penicillin", "Amoxycillin + Clavulanic acid"), ("Penicillins", "Co-amoxiclav 625"),
    ("Amoxicillin", "Ampicillin + Cloxacillin"), ("Beta-lactams", "Ceftriaxone"), ("Cephalosporins", "Cefixime"),
    ("NSAIDs", "Aceclofenac + Paracetamol"), ("Ibuprofen", "Diclofenac sodium"), ("Aspirin", "Mefenamic acid"),
    ("Macrolides", "Azithromycin"), ("Erythromycin", "Clarithromycin"),
    ("Fluoroquinolones", "Ofloxacin + Ornidazole"), ("Ciprofloxacin", "Levofloxacin"),
    ("Opioids", "Tramadol + Paracetamol"), ("Codeine", "Morphine"),
    ("Metronidazole", "Metronidazole 400"),  # by name, outside the table
])
def test_a_medicine_matching_an_allergy_stops_signing(allergy, drug):
    [alert] = check([{"substance": allergy}], drug).alerts
    assert alert.blocks and alert.drug == drug and allergy in alert.message


@pytest.mark.parametrize(("allergy", "drug"), [
    ("Sulfonamides", "Furosemide"), ("Sulfonamides", "Hydrochlorothiazide"),  # non-antibacterial sulfonamides
    ("Penicillin", "Azithromycin"), ("NSAIDs", "Paracetamol"), ("Dust", "Cetirizine"), ("Penicillin", "Aztreonam"),
])
def test_unrelated_medicines_pass(allergy, drug):
    assert check([{"substance": allergy}], drug).alerts == ()


def test_penicillin_and_cephalosporins_cross_react_sensibly():
    mild = check([{"substance": "Penicillin", "severity": "mild"}], "Cefixime", "Cefalexin", "Meropenem")
    assert [(a.drug, a.blocks) for a in mild.alerts] == [("Cefixime", False), ("Cefalexin", True),
                                                          ("Meropenem", False)]
    assert "uncommon" in mild.alerts[0].message and "side chain" in mild.alerts[1].message
    severe = check([{"substance": "Penicillin", "severity": "severe"}], "Cefixime")
    assert severe.alerts[0].blocks and "severe" in severe.alerts[0].message


def test_medicines_of_one_class_together_are_duplicates():
    review = check([], "Ibuprofen 400 mg", "Diclofenac", "Azithromycin", "Pantoprazole", "pantoprazole")
    assert [d.message for d in review.duplicates] == [
        "Duplicate therapy, more than one of the NSAIDs (non-steroidal anti-inflammatory drugs): "
        "Ibuprofen 400 mg, Diclofenac.",
        "Duplicate therapy, the same medicine more than once: Pantoprazole, pantoprazole."]
    assert check([], "Amoxicillin + Clavulanic acid").duplicates == ()  # one combination is one medicine


@pytest.mark.parametrize(("allergy", "drug"), [
    ("Penicillin", "Augmentin 625 Duo"), ("Sulfa drugs", "Septran DS"), ("Sulfonamides", "Bactrim"),
    ("Aspirin", "Ecosprin 75"), ("NSAIDs", "Brufen 400"), ("Ibuprofen", "Voveran SR 100"),
    ("Macrolides", "Azithral 500"), ("Diclofenac", "Combiflam"), ("Amoxicillin", "Moxikind-CV 625"),
    ("Fluoroquinolones", "Ciplox 500"), ("Cephalosporins", "Taxim 1 g"), ("Ceftriaxone", "Monocef 1g"),
    ("Cefixime", "Zifi 200"), ("Penicillin", "Penidure LA 12"), ("Opioids", "Ultracet"),
    ("Augmentin", "Amoxicillin 500"),  # an allergy recorded by its brand
])
def test_common_indian_brands_are_read_as_their_generics(allergy, drug):
    [alert] = check([{"substance": allergy}], drug).alerts
    assert alert.blocks and drug in alert.message and allergy in alert.message


def test_a_brand_is_matched_as_whole_words_the_longest_first():
    assert allergy_check.ingredients("Taxim-O 200") == {"cefixime": "cephalosporins"}
    assert allergy_check.ingredients("Taxim 1 g") == {"cefotaxime": "cephalosporins"}
    assert allergy_check.ingredients("Moxikind-CV 625") == {"amoxicillin": "penicillins"}
    assert allergy_check.ingredients("Zifitrol") == {} and allergy_check.ingredients("Amoxil") == {}


def test_the_same_medicine_in_two_strengths_or_by_brand_is_a_duplicate():
    review = check([], "Paracetamol 500", "Paracetamol 650 mg", "Crocin", "Cetirizine 10 mg")
    assert [d.message for d in review.duplicates] == [
        "Duplicate therapy, the same medicine more than once: Paracetamol 500, Paracetamol 650 mg, Crocin."]


def test_a_name_the_check_does_not_know_is_said_to_be_unchecked_not_passed():
    review = check([{"substance": "Penicillin", "severity": "mild"}, {"substance": "Dust"}],
                   "Zyxolin 10", "Paracetamol 500", "Crocin")
    assert review.alerts == () and [(n.index, n.message) for n in review.unchecked] == [
        (None, "Not checked: Dust is not a name the allergy check knows — check the medicines against it yourself."),
        (0, "Not checked: Zyxolin 10 is not a name the allergy check knows — check it against Penicillin (mild), "
            "Dust yourself.")]
    assert check([{"substance": "Penicillin"}], "Paracetamol", "Augmentin").unchecked == ()
    assert allergy_check.review(allergy_check.Recorded("none"), [{"drug": "Zyxolin"}]).unchecked == ()


# --- Over HTTP -----------------------------------------------------------------------------------------

def test_cotrimoxazole_for_a_sulfonamide_allergy_is_flagged_and_needs_a_reason(seen, doctor_browser, sql):
    patient, encounter = seen
    record_allergy(doctor_browser, patient, substance="Sulfonamides", reaction="rash", severity="severe")
    added = add(doctor_browser, encounter, **COTRIMOXAZOLE)
    body = added.get_data(as_text=True)
    assert added.status_code == 200 and "<html" not in body
    assert "Allergy alert" in body and "Cotrimoxazole (sulfamethoxazole) is one of the sulfonamide" in body
    assert "Sulfonamides (severe)" in body and 'name="override"' in body
    rx_id, *_, version, _, _, _ = rows(sql)[0]
    mark = high_water(sql)
    refused = sign(doctor_browser, rx_id, version, advice="Plenty of fluids", language="hi", override="  ")
    body = refused.get_data(as_text=True)
    assert refused.status_code == 422 and "<html" not in body and "Allergy alert" in body
    assert "State why you prescribe it despite the allergy" in body and "Plenty of fluids</textarea>" in body
    assert '<option value="hi" selected>' in body
    assert rows(sql)[0][3] == "draft" and sql("SELECT advice_enc IS NULL FROM prescription") == [(True,)]
    assert [(a[0], a[4]) for a in writes_since(sql, mark)] == [("prescription.sign", "not saved: invalid")]
    plain = sign(doctor_browser, rx_id, version, htmx=False, advice="Plenty of fluids")
    assert plain.status_code == 422 and "<html" in plain.get_data(as_text=True)
    assert "Plenty of fluids</textarea>" in plain.get_data(as_text=True) and rows(sql)[0][3] == "draft"
    mark = high_water(sql)
    signed = sign(doctor_browser, rx_id, version, override=REASON)
    assert signed.status_code == 200 and rows(sql)[0][3] == "signed"
    trail = writes_since(sql, mark)
    assert [a[:2] for a in trail] == [("prescription.allergy_override", "allowed"), ("prescription.sign", "allowed")]
    assert "1 allergy alert" in trail[0][4] and "sulfasalazine" not in str(trail)  # no clinical text in the trail
    assert sql("SELECT count(*) FROM prescription WHERE position('sulfasalazine'::bytea IN printed_enc) > 0") == [(0,)]
    page = doctor_browser.get(f"/prescriptions/{rx_id}").get_data(as_text=True)
    assert "Allergies" in page and "Sulfonamides (severe)" in page and REASON in page
    text, _ = pdf_text(doctor_browser.client.get(f"/prescriptions/{rx_id}.pdf").get_data())
    assert "Sulfonamides (severe)" in " ".join(text.split()) and "sulfasalazine" in text
    # A new version is signed on its own: the reason is stated again, and kept with that version.
    draft = doctor_browser.post(f"/prescriptions/{rx_id}/revise", {}, page=f"/prescriptions/{rx_id}")
    draft_id = draft.headers["Location"].rsplit("/", 1)[1]
    version = rows(sql)[1][4]
    assert sign(doctor_browser, draft_id, version, next=f"/prescriptions/{draft_id}").status_code == 422
    assert sign(doctor_browser, draft_id, version, override="Still needed for PCP prophylaxis.",
                next=f"/prescriptions/{draft_id}").status_code == 204
    newer = doctor_browser.get(f"/prescriptions/{draft_id}").get_data(as_text=True)
    assert "Still needed for PCP prophylaxis." in newer and REASON not in newer
    assert REASON in doctor_browser.get(f"/prescriptions/{rx_id}").get_data(as_text=True)


def test_without_javascript_the_alert_shows_on_the_consultation(seen, doctor_browser, sql):
    patient, encounter = seen
    record_allergy(doctor_browser, patient, substance="Penicillin")
    added = add(doctor_browser, encounter, htmx=False, **{**ITEM, "drug": "Amoxycillin + Clavulanic acid"})
    assert added.status_code == 303
    page = doctor_browser.get(f"/encounters/{encounter}").get_data(as_text=True)
    assert "Allergy alert" in page and "is one of the penicillins" in page and "Penicillin" in page


def test_a_caution_or_a_duplicate_warns_without_stopping_signing(seen, doctor_browser, sql):
    patient, encounter = seen
    record_allergy(doctor_browser, patient, substance="Penicillin", severity="mild")
    add(doctor_browser, encounter, **{**ITEM, "drug": "Cefixime"})
    add(doctor_browser, encounter, **{**ITEM, "drug": "Ibuprofen"})
    panel = add(doctor_browser, encounter, **{**ITEM, "drug": "Diclofenac"}).get_data(as_text=True)
    assert "a caution: signing is not stopped" in panel and "Duplicate therapy, more than one of the NSAIDs" in panel
    assert 'name="override"' not in panel
    rx_id, *_, version, _, _, _ = rows(sql)[0]
    mark = high_water(sql)
    assert sign(doctor_browser, rx_id, version).status_code == 200 and rows(sql)[0][3] == "signed"
    assert [a[0] for a in writes_since(sql, mark)] == ["prescription.sign"]


def test_no_known_allergies_and_not_recorded_print_differently(seen, doctor_browser, sql, desk, setup, register):
    _, encounter = seen
    panel = add(doctor_browser, encounter).get_data(as_text=True)
    assert "<strong>Allergies:</strong> Not recorded" in panel and "Ask the patient" in panel
    rx_id, *_, version, _, _, _ = rows(sql)[0]
    sign(doctor_browser, rx_id, version, language="hi")
    page = doctor_browser.get(f"/prescriptions/{rx_id}").get_data(as_text=True)
    assert "Not recorded" in page and "दर्ज नहीं" in page and "No known allergies" not in page
    assert "not asked" not in page and "पूछा" not in page  # the app knows nothing was recorded, not why
    other, encounter = consultation(desk, setup, register, doctor_browser, full_name="Sunita Devi Sharma",
                                    language="hi")
    record_allergy(doctor_browser, other, nka="1")
    panel = add(doctor_browser, encounter).get_data(as_text=True)
    assert "No known allergies" in panel and "Ask the patient" not in panel
    rx_id, *_, version, _, _, _ = rows(sql)[1]
    sign(doctor_browser, rx_id, version, language="hi")
    page = doctor_browser.get(f"/prescriptions/{rx_id}").get_data(as_text=True)
    assert "कोई ज्ञात एलर्जी नहीं" in page and "No known allergies" in page and "Not recorded" not in page
    text, _ = pdf_text(doctor_browser.client.get(f"/prescriptions/{rx_id}.pdf").get_data())
    assert "No known allergies" in text


def test_the_alert_shows_while_the_medicine_is_typed(seen, doctor_browser, sql, factory, clinic, app):
    patient, encounter = seen
    record_allergy(doctor_browser, patient, substance="Sulfa drugs")
    add(doctor_browser, encounter, **{**ITEM, "drug": "Ibuprofen"})
    url = f"/encounters/{encounter}/prescription/check"
    mark = high_water(sql)
    typed = doctor_browser.get(f"{url}?drug=Cotrimoxazole+DS", headers=HTMX)
    body = typed.get_data(as_text=True)
    assert typed.status_code == 200 and "<html" not in body and 'id="rx-drug-check"' in body
    assert "Allergy alert: Cotrimoxazole DS (sulfamethoxazole)" in body and "Sulfa drugs" in body
    assert "HX-Request" in typed.headers["Vary"]
    assert "more than one of the NSAIDs" in doctor_browser.get(f"{url}?drug=Aceclofenac", headers=HTMX).get_data(
        as_text=True)
    quiet = doctor_browser.get(f"{url}?drug=Pantoprazole", headers=HTMX).get_data(as_text=True)
    assert "notice" not in quiet and 'id="rx-drug-check"' in quiet
    assert [a[:3] for a in audit_since(sql, mark)] == [("prescription.check", "allowed", patient)] * 3
    assert doctor_browser.get(url, headers=HTMX).status_code == 200 and len(audit_since(sql, mark)) == 3
    plain = doctor_browser.get(f"{url}?drug=Cotrimoxazole")
    assert plain.status_code == 303 and plain.headers["Location"] == f"/encounters/{encounter}"
    from app.auth.policy import Role
    from tests.conftest import Browser

    other = Browser(app.test_client())
    other.sign_in(factory.person(clinic, Role.DOCTOR, name="Dr Someone Else"))
    refused = other.get(f"{url}?drug=Cotrimoxazole", headers=HTMX)
    assert refused.status_code == 403 and "Sulfa" not in refused.get_data(as_text=True)


def test_an_unknown_medicine_is_flagged_not_checked_without_stopping_signing(seen, doctor_browser, sql):
    patient, encounter = seen
    record_allergy(doctor_browser, patient, substance="Penicillin", severity="mild")
    panel = add(doctor_browser, encounter, **{**ITEM, "drug": "Zyxolin"}).get_data(as_text=True)
    assert "Not checked: Zyxolin is not a name the allergy check knows — check it against Penicillin" in panel
    typed = doctor_browser.get(f"/encounters/{encounter}/prescription/check?drug=Augmentin+625", headers=HTMX)
    assert "Allergy alert: Augmentin 625 (amoxicillin)" in typed.get_data(as_text=True)
    rx_id, *_, version, _, _, _ = rows(sql)[0]
    assert sign(doctor_browser, rx_id, version).status_code == 200 and rows(sql)[0][3] == "signed"
