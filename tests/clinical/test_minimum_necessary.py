# ruff: noqa: F811  (fixtures imported from tests/scheduling/conftest.py are redefined as arguments, as pytest means)
"""Minimum necessary, field by field: a doctor in a care relationship writes a consultation over HTTP whose
note sections, diagnosis, addendum, prescription, problem, allergy and vitals each carry a sentinel; the
care doctor sees every one of them, and the receptionist, billing, the auditor and the admin meet none of
them in any response (body or header, whatever the status) of any route they can reach.

The walk is built from `app.url_map`: every GET route, with its URL arguments filled from the ids made
here (a GET route with an argument this file does not know fails the test, so a new route cannot slip
past), each with and without `HX-Request`, plus the query strings that change what a page shows, and
every POST route the role is refused (its error page must not tell either).
"""

import io
import itertools
import re
import uuid
import zipfile
from dataclasses import dataclass

import pytest

from app.auth.policy import PUBLIC, ROLE_PERMISSIONS, SIGN_IN_STEP, Role
from app.timeline.models import Kind
from app.timeline.services import encode_cursor
from tests.conftest import CSRF_RE, patient_id
from tests.scheduling.conftest import HTMX, doctor, setup, today, working_day  # noqa: F401

TAG = "7f3a"
NOTE = {"subjective": f"SENTINEL-SUBJECTIVE-{TAG}", "objective": f"SENTINEL-OBJECTIVE-{TAG}",
        "assessment": f"SENTINEL-ASSESSMENT-{TAG}", "plan": f"SENTINEL-PLAN-{TAG}"}
DIAGNOSIS = {"text": f"SENTINEL-DIAGNOSIS-{TAG}", "code": "A92.0"}
ADDENDUM = f"SENTINEL-ADDENDUM-{TAG}"
ALLERGY = {"substance": f"SENTINEL-ALLERGY-{TAG}", "reaction": f"SENTINEL-REACTION-{TAG}", "severity": "severe"}
PROBLEM = {"condition": f"SENTINEL-PROBLEM-{TAG}", "since": "2019", "note": f"SENTINEL-PROBLEM-NOTE-{TAG}"}
ITEM = {"drug": f"Sentineldrug{TAG}", "strength": "250 mg", "form": "tablet", "dose": "1 tablet",
        "frequency": "1-0-1", "duration": "5 days", "timing": "after_food",
        "instructions": f"SENTINEL-RX-INSTRUCTIONS-{TAG}"}
ADVICE = f"SENTINEL-RX-ADVICE-{TAG}"
VITALS = {"systolic": "187", "diastolic": "123", "pulse": "137", "temperature": "39.7", "temperature_unit": "C",
          "glucose_mg_dl": "313", "glucose_context": "random"}
# The vitals as the app formats them (app.clinical.vitals.describe): numbers alone would match ids.
VITALS_TEXT = ["187/123", "137 /min", "39.7 °C", "313 mg/dL"]
SENTINELS = [*NOTE.values(), *DIAGNOSIS.values(), ADDENDUM, ALLERGY["substance"], ALLERGY["reaction"],
             PROBLEM["condition"], PROBLEM["note"], ITEM["drug"], ITEM["instructions"], ADVICE, *VITALS_TEXT]
SPECIALITY = "General medicine"
PATIENT_NAME = "Kavya Iyer"
REG_NO = "KMC/2011/48213"


@dataclass
class Record:
    """The ids of everything the care doctor wrote, and what else the walk fills URLs with."""

    clinic: str
    patient: str
    mrn: str
    doctor: str
    type_id: str
    walk_in: str
    follow_up: str
    follow_up_day: str
    encounter: str
    vitals: str
    allergy: str
    problem: str
    rx: str
    rx_code: str
    grant: str
    session: str

    @property
    def sentinels(self) -> list[str]:
        """Every sentinel, with the prescription's verification code (it opens the medicines publicly)."""
        grouped = "-".join(self.rx_code[i:i + 4] for i in range(0, len(self.rx_code), 4))
        return [*SENTINELS, self.rx_code, grouped]


def _one(sql, query: str, **params) -> str:
    rows = sql(query, **params)
    assert len(rows) == 1, (query, rows)
    return str(rows[0][0])


def _ok(response, *codes):
    assert response.status_code in (codes or (200, 303)), (response.status_code, response.get_data(as_text=True)[:800])
    return response


@pytest.fixture
def doctor_browser(new_browser, doctor):
    browser = new_browser()
    browser.sign_in(doctor)
    return browser


@pytest.fixture
def record(clinic, doctor, setup, desk, register, doctor_browser, factory, new_browser, sql) -> Record:
    """A visit the doctor worked completely over HTTP, every clinical field carrying a sentinel."""
    sql("UPDATE staff_user SET registration_number = :r, registration_council = 'Karnataka Medical Council', "
        "speciality = :s WHERE id = :d", r=REG_NO, s=SPECIALITY, d=doctor.id)
    patient = patient_id(register(full_name=PATIENT_NAME, language="en", dob="1988-07-21", sex="F"))
    _ok(desk.post("/queue/walk-in", {"patient_id": patient, "doctor_id": str(doctor.id), "type_id": "",
                                     "reason": "", "intent": "add"}, page="/queue/walk-in"))
    called = _ok(doctor_browser.post(f"/queue/{doctor.id}/next", {"mine": "1"}, page="/queue/mine"), 303)
    encounter = re.search(r"/encounters/([0-9a-f-]{36})$", called.headers["Location"]).group(1)
    page = f"/encounters/{encounter}"

    def write(url: str, data: dict) -> None:
        """Submit a form of the consultation screen, without JavaScript."""
        _ok(doctor_browser.post(url, {"next": page, "encounter_id": encounter, **data}, page=page))

    write(f"{page}/note", {**NOTE, "version": "1"})
    write(f"{page}/diagnoses", DIAGNOSIS)
    write(f"/patients/{patient}/vitals", VITALS)
    write(f"/patients/{patient}/allergies", ALLERGY)
    write(f"/patients/{patient}/problems", PROBLEM)
    write(f"{page}/prescription/items", ITEM)
    rx = _one(sql, "SELECT id FROM prescription")
    version = _one(sql, "SELECT version FROM prescription")
    write(f"/prescriptions/{rx}/sign", {"version": version, "advice": ADVICE, "language": "en"})
    follow_up_day = working_day(7).isoformat()
    write(f"{page}/follow-up", {"day": follow_up_day})
    version = _one(sql, "SELECT version FROM encounter")
    write(f"{page}/sign", {**NOTE, "version": version})
    write(f"{page}/addenda", {"text": ADDENDUM})
    assert sql("SELECT status FROM encounter") == [("signed",)]
    assert sql("SELECT status FROM prescription") == [("signed",)]
    # The desk books the follow-up the consultation asked for.
    booked = _ok(desk.post("/schedule/book", {"doctor_id": str(doctor.id), "start": f"{follow_up_day}T09:00",
                                              "patient_id": patient, "type_id": str(setup.type_id),
                                              "reason": "Follow-up visit", "intent": "book"},
                           page=f"/schedule/book?doctor_id={doctor.id}&start={follow_up_day}T09:00"), 303)
    follow_up = re.search(r"/appointments/([0-9a-f-]{36})", booked.headers["Location"]).group(1)
    # A nurse breaks the glass (a grant for the admin to review; her reason is no clinical content).
    nurse = new_browser()
    nurse.sign_in(factory.person(clinic, Role.NURSE, name="Nirmala Nurse"))
    _ok(nurse.post(f"/patients/{patient}/break-glass", {"reason": "Collapsed in the waiting room"},
                   page=f"/patients/{patient}"))
    return Record(
        clinic=str(clinic.id), patient=patient, doctor=str(doctor.id), type_id=str(setup.type_id),
        mrn=re.search(r"MRN-\d+", desk.get(f"/patients/{patient}").get_data(as_text=True)).group(0),
        walk_in=_one(sql, "SELECT id FROM appointment WHERE walk_in"), follow_up=follow_up,
        follow_up_day=follow_up_day, encounter=encounter, vitals=_one(sql, "SELECT id FROM vitals"),
        allergy=_one(sql, "SELECT id FROM chart_item WHERE kind = 'allergy'"),
        problem=_one(sql, "SELECT id FROM chart_item WHERE kind = 'problem'"), rx=rx,
        rx_code=_one(sql, "SELECT code FROM prescription"), grant=_one(sql, "SELECT id FROM break_glass"),
        session=_one(sql, "SELECT id FROM doctor_session ORDER BY weekday LIMIT 1"))


# --- The walk ------------------------------------------------------------------------------------------

def url_values(r: Record) -> dict[str, list[str]]:
    """What each URL argument of the map is filled with (every value is tried)."""
    return {
        "patient_id": [r.patient], "appointment_id": [r.walk_in, r.follow_up], "encounter_id": [r.encounter],
        "rx_id": [r.rx], "clinic_id": [r.clinic], "doctor_id": [r.doctor], "user_id": [r.doctor],
        "type_id": [r.type_id], "vitals_id": [r.vitals], "item_id": [r.allergy, r.problem], "grant_id": [r.grant],
        "session_id": [r.session], "exception_id": [str(uuid.uuid4())], "day": [today().isoformat()],
        "filename": ["app.js"],
        # Billing documents hold no clinical text; unknown ids answer 404 for everyone.
        "bill_id": [str(uuid.uuid4())], "line_id": [str(uuid.uuid4())], "payment_id": [str(uuid.uuid4())],
        "price_item_id": [str(uuid.uuid4())],
        "reminder_id": [str(uuid.uuid4())],
        # A patient's link: an unknown token answers the same "expired" page to everyone.
        "token": ["not-a-live-link-token"], "offer_id": [str(uuid.uuid4())],
    }


def map_urls(app, r: Record, method: str, rules) -> list[str]:
    """Every URL of these rules with its arguments filled in every way `url_values` knows."""
    adapter, values, urls = app.url_map.bind("localhost"), url_values(r), []
    for rule in rules:
        unknown = rule.arguments - values.keys()
        if unknown:
            pytest.fail(f"{method} {rule.rule} has URL arguments this test cannot fill: {sorted(unknown)}. "
                        f"Add them to url_values() so the walk covers the route.")
        names = sorted(rule.arguments)
        for combination in itertools.product(*(values[n] for n in names)):
            urls.append(adapter.build(rule.endpoint, dict(zip(names, combination, strict=True)), method=method))
    return urls


def query_variants(r: Record, sql) -> list[str]:
    """The query strings that change what a page shows: timeline filters and pages, days, the trail."""
    timeline = f"/patients/{r.patient}/timeline"
    events = sql("SELECT at, id FROM timeline_event ORDER BY at DESC, id DESC")
    cursors = [encode_cursor(at, event_id) for at, event_id in events]
    day, later = today().isoformat(), r.follow_up_day
    urls = [f"{timeline}?kind={k.value}" for k in Kind]
    urls += [f"{timeline}?" + "&".join(f"kind={k.value}" for k in Kind),
             f"{timeline}?doctor={r.doctor}", f"{timeline}?speciality={SPECIALITY.replace(' ', '+')}",
             f"{timeline}?kind=encounter&kind=prescription&doctor={r.doctor}"]
    urls += [f"{timeline}?before={c}" for c in cursors]
    urls += [f"{timeline}?kind={k.value}&before={cursors[0]}" for k in Kind]
    urls += [f"/schedule/?day={d}" for d in (day, later)]
    urls += [f"/schedule/board?day={d}" for d in (day, later)]
    urls += [f"/schedule/week?doctor_id={r.doctor}&day={d}" for d in (day, later)]
    urls += [f"/schedule/sheet/{r.doctor}?day={d}" for d in (day, later)]
    urls += [f"/schedule/?day={later}&patient_id={r.patient}&doctor_id={r.doctor}",
             f"/schedule/book?doctor_id={r.doctor}&start={later}T09:15&patient_id={r.patient}",
             f"/queue/walk-in?patient_id={r.patient}&doctor_id={r.doctor}", "/queue/poll?mine=1",
             f"/patients/{r.patient}/vitals?next=/patients/{r.patient}",
             f"/patients/{r.patient}/vitals?appointment_id={r.walk_in}", f"/rx/{r.clinic}/{r.rx}?code=0000-0000-0000"]
    trail = [f"patient={r.patient}", f"user={r.doctor}", f"patient={r.patient}&action=encounter.save",
             f"from={day}&to={day}"]
    urls += [f"/audit/?{q}" for q in trail] + [f"/audit/export.csv?{q}" for q in trail]
    return urls


@dataclass
class Seen:
    """One response of the walk."""

    method: str
    url: str
    htmx: bool
    status: int
    content_type: str
    text: str  # the body and every header


def _text_of(response) -> str:
    """What a response says: its text, every file of a ZIP export, nothing of a PDF."""
    if response.mimetype.endswith("pdf"):
        return ""
    if response.mimetype == "application/zip":
        with zipfile.ZipFile(io.BytesIO(response.get_data())) as archive:
            return "\n".join(archive.read(name).decode() for name in archive.namelist())
    return response.get_data(as_text=True)


def fetch(browser, method: str, url: str, htmx: bool, data: dict | None = None) -> Seen:
    """One request, read whole (the trail's CSV export streams)."""
    headers = HTMX if htmx else {}
    if method == "POST":
        data = {"csrf_token": browser.token, **(data or {})}
    with browser.client.open(url, method=method, headers=headers, data=data) as response:
        body = _text_of(response)
        head = "\n".join(f"{k}: {v}" for k, v in response.headers.items())
        seen = Seen(method, url, htmx, response.status_code, response.mimetype, head + "\n\n" + body)
    token = CSRF_RE.search(seen.text)
    browser.token = token.group(1) if token else browser.token
    return seen


def walk(app, browser, role: Role | None, r: Record, sql) -> list[Seen]:
    """Every GET the map has (and the variants), and every POST this role is refused, with and without htmx."""
    rules = list(app.url_map.iter_rules())
    gets = map_urls(app, r, "GET", [rule for rule in rules if "GET" in rule.methods]) + query_variants(r, sql)
    held = ROLE_PERMISSIONS[role] if role else frozenset()

    def refused(rule) -> bool:
        permission = getattr(app.view_functions[rule.endpoint], "permission", None)
        return "POST" in rule.methods and permission not in (PUBLIC, SIGN_IN_STEP) and permission not in held

    posts = map_urls(app, r, "POST", [rule for rule in rules if refused(rule)])
    browser.get("/")  # a CSRF token for the POSTs
    seen = [fetch(browser, "GET", url, htmx) for url in gets for htmx in (False, True)]
    seen += [fetch(browser, "POST", url, htmx, {"text": "x", "version": "1"})
             for url in posts for htmx in (False, True)]
    searches = [("/patients/search", {"q": q}) for q in (PATIENT_NAME, r.mrn, "kavya")]
    searches += [("/audit/", {"mrn": r.mrn})]
    seen += [fetch(browser, "POST", url, htmx, data) for url, data in searches for htmx in (False, True)]
    return seen


def leaks(seen: list[Seen], sentinels: list[str]) -> list[str]:
    """Each response that carries a sentinel (or is a PDF, whose text a search of its bytes would miss)."""
    found = []
    for s in seen:
        hits = [x for x in sentinels if x in s.text]
        if hits or s.content_type == "application/pdf":
            found.append(f"{s.method} {s.url} (htmx={s.htmx}) -> {s.status} {s.content_type}: {hits or 'a PDF'}")
    return found


# --- The tests -----------------------------------------------------------------------------------------

def test_the_care_doctor_sees_every_sentinel(app, record, doctor_browser, sql):
    r = record
    pages = [f"/encounters/{r.encounter}", f"/patients/{r.patient}/timeline", f"/prescriptions/{r.rx}"]
    consultation, timeline, prescription = (_ok(doctor_browser.get(url), 200).get_data(as_text=True) for url in pages)
    assert all(s in consultation for s in [*NOTE.values(), *DIAGNOSIS.values(), ADDENDUM, ITEM["drug"], ADVICE,
                                           ITEM["instructions"], PROBLEM["condition"], ALLERGY["substance"],
                                           "187/123"])
    assert all(s in timeline for s in [DIAGNOSIS["text"], NOTE["assessment"], ADDENDUM, ITEM["drug"], "137 /min",
                                       "39.7 °C", ALLERGY["substance"], PROBLEM["condition"]])
    assert ITEM["drug"] in prescription and REG_NO in prescription
    with doctor_browser.client.get(f"/prescriptions/{r.rx}.pdf") as pdf:
        assert pdf.status_code == 200 and pdf.get_data().startswith(b"%PDF")
    # The very walk the other roles get finds every sentinel when the care doctor takes it.
    seen = walk(app, doctor_browser, Role.DOCTOR, r, sql)
    found = {x for s in seen for x in r.sentinels if x in s.text}
    assert [x for x in r.sentinels if x not in found] == []
    assert any(s.content_type == "application/pdf" and s.status == 200 for s in seen)


@pytest.mark.parametrize("role", [Role.RECEPTION, Role.BILLING, Role.AUDITOR, Role.ADMIN])
def test_no_clinical_content_reaches_a_role_without_it(role, app, record, factory, clinic, new_browser, sql):
    browser = new_browser()
    browser.sign_in(factory.person(clinic, role, name=f"Sam {role.label}"))
    seen = walk(app, browser, role, record, sql)
    assert leaks(seen, record.sentinels) == []
    assert not [s for s in seen if s.status >= 500], [f"{s.method} {s.url} -> {s.status}" for s in seen
                                                      if s.status >= 500]
    by_url = {(s.method, s.url, s.htmx): s for s in seen}
    patient_page = by_url[("GET", f"/patients/{record.patient}", False)]
    timeline = by_url[("GET", f"/patients/{record.patient}/timeline", False)]
    if role is Role.AUDITOR:
        # The auditor sees the trail of the visit, never a patient's page.
        assert patient_page.status == 403
        trail = by_url[("GET", f"/audit/?patient={record.patient}", False)]
        assert trail.status == 200 and "Saved a consultation note" in trail.text
        export = by_url[("GET", f"/audit/export.csv?patient={record.patient}", False)]
        assert export.status == 200 and "encounter.sign" in export.text
    else:
        # The walk really reached the patient: the page and the timeline show the visit, not its content.
        assert patient_page.status == 200 and PATIENT_NAME in patient_page.text
        assert timeline.status == 200 and "Consultation with Dr Meera Rao" in timeline.text
        assert "Prescription issued by Dr Meera Rao" in timeline.text
    # Nothing clinical was shown, so nothing clinical was read: no page of theirs audited a clinical view.
    assert sql("SELECT action FROM audit_event a JOIN staff_user u ON u.id = a.user_id "
               "WHERE u.full_name = :n AND a.outcome = 'allowed' AND (a.action LIKE 'encounter.%' "
               "OR a.action LIKE 'vitals.%' OR a.action LIKE 'chart.%' OR a.action LIKE 'prescription.%')",
               n=f"Sam {role.label}") == []


def test_the_walk_fails_on_a_route_it_cannot_fill(app):
    class Rule:
        rule, endpoint, arguments = "/things/<uuid:thing_id>", "things.show", {"thing_id"}

    blank = Record(**{name: str(uuid.uuid4()) for name in Record.__dataclass_fields__})
    with pytest.raises(pytest.fail.Exception, match="thing_id"):
        map_urls(app, blank, "GET", [Rule()])
