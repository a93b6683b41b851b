"""The unified timeline over HTTP: ordering, filters, paging, htmx and plain requests, bad addresses,
the audit record and the cross-clinic refusal."""

from datetime import timedelta
from html import unescape
from urllib.parse import parse_qs, urlsplit

import pytest

from app.auth.policy import Role
from app.timeline.services import decode_cursor
from tests.scheduling.conftest import audit_since, high_water
from tests.timeline.conftest import HTMX, T0, item_ids

OLDER_RE = r'<a href="([^"]+)" rel="next">Older</a>'


def older_link(html: str) -> str | None:
    import re

    found = re.search(OLDER_RE, html)
    return unescape(found.group(1)) if found else None


def url(patient: str, **args) -> str:
    from urllib.parse import urlencode

    return f"/patients/{patient}/timeline" + (("?" + urlencode(args, doseq=True)) if args else "")


@pytest.fixture
def doctor_browser(as_role, doctors):
    return as_role(Role.DOCTOR, "Dr Another")


# --- Ordering ----------------------------------------------------------------------------------------------

def test_newest_first_and_ties_broken_by_id(desk, patient, history):
    apart = history.consents(patient, 3)
    tied = history.consents(patient, 4, at=T0 + timedelta(hours=1), same_time=True)
    page = desk.get(url(patient))
    assert page.status_code == 200
    shown = item_ids(page.get_data(as_text=True))
    expected = sorted(str(i) for i in tied)[::-1] + [str(i) for i in reversed(apart)]
    assert len(shown) == 8 and shown[1:] == expected  # the registration (now) is the newest
    assert "Registered" in page.get_data(as_text=True).split(f'id="tl-{shown[1]}"')[0]


def test_each_kind_is_described_without_values(desk, patient, history, doctors):
    gp, _ = doctors
    history.appointment(patient, gp.id, actions=("booked", "check_in", "cancel"), token=4)
    history.record_change(patient, "address_line,phone")
    history.consents(patient, 1)
    html = desk.get(url(patient)).get_data(as_text=True)
    assert "Appointment booked with Dr Meera Rao for 2 Mar, 10:" in html
    assert "(Consultation)" in html
    assert "Checked in, token 4" in html
    assert "Cancelled: appointment with Dr Meera Rao" in html
    assert "Details changed: Address, Mobile" in html
    assert "WhatsApp reminders: consent given (in person)" in html
    assert "Registered" in html
    for sentinel in ("REASON-SENTINEL", "DETAIL-SENTINEL", "OLD-SENTINEL", "NEW-SENTINEL"):
        assert sentinel not in html


# --- Filters -----------------------------------------------------------------------------------------------

@pytest.fixture
def mixed(patient, history, doctors):
    """Appointments with each doctor, a consultation with the cardiologist, a consent change."""
    gp, heart = doctors
    ids = {
        "gp": history.appointment(patient, gp.id)[0],
        "heart": history.appointment(patient, heart.id)[0],
        "consult": history.encounter(patient, heart.id, assessment="fine"),
        "consent": history.consents(patient, 1)[0],
    }
    return ids


def test_filter_by_kind(desk, patient, mixed):
    html = desk.get(url(patient, kind="appointment")).get_data(as_text=True)
    assert len(item_ids(html)) == 2 and "Consultation with" not in html and "consent given" not in html
    html = desk.get(url(patient, kind=["appointment", "consent"])).get_data(as_text=True)
    assert len(item_ids(html)) == 3 and "consent given" in html and "Registered" not in html
    html = desk.get(url(patient, kind="encounter")).get_data(as_text=True)
    assert "Consultation with Dr Arjun Nair — signed" in html and "Consultation with Dr Arjun Nair — opened" in html
    assert 'value="encounter" checked' in html


def test_filter_by_doctor_leaves_out_items_without_one(desk, patient, mixed, doctors):
    gp, heart = doctors
    html = desk.get(url(patient, doctor=str(gp.id))).get_data(as_text=True)
    assert item_ids(html) == [str(mixed["gp"])]
    html = desk.get(url(patient, doctor=str(heart.id))).get_data(as_text=True)
    assert len(item_ids(html)) == 3 and "Registered" not in html and "consent given" not in html
    html = desk.get(url(patient, doctor=str(heart.id), kind="appointment")).get_data(as_text=True)
    assert item_ids(html) == [str(mixed["heart"])]


def test_filter_by_speciality(desk, patient, mixed):
    html = desk.get(url(patient, speciality="Cardiology")).get_data(as_text=True)
    assert len(item_ids(html)) == 3 and "Dr Meera Rao for" not in html and "Registered" not in html
    assert '<option value="Cardiology" selected>' in html
    html = desk.get(url(patient, speciality="General medicine")).get_data(as_text=True)
    assert item_ids(html) == [str(mixed["gp"])]
    html = desk.get(url(patient, speciality="Dermatology")).get_data(as_text=True)
    assert item_ids(html) == [] and "Nothing matches these filters." in html


# --- Paging ------------------------------------------------------------------------------------------------

def _pages(browser, first_url: str) -> list[list[str]]:
    """Follow the "Older" links from `first_url` to the end; the item ids of each page."""
    pages, next_url = [], first_url
    while next_url:
        html = browser.get(next_url).get_data(as_text=True)
        pages.append(item_ids(html))
        next_url = older_link(html)
        assert len(pages) < 10
    return pages


@pytest.mark.parametrize(("count", "sizes"), [(25, [25]), (26, [25, 1]), (50, [25, 25])])
def test_page_boundaries(desk, patient, history, count, sizes):
    history.consents(patient, count - 1)  # and the registration
    pages = _pages(desk, url(patient))
    assert [len(p) for p in pages] == sizes
    flat = [i for p in pages for i in p]
    assert len(set(flat)) == count
    last = desk.get(url(patient)).get_data(as_text=True)
    assert ("Start of the record" in last) == (count == 25)


def test_the_cursor_is_the_last_item_shown(desk, patient, history, sql):
    history.consents(patient, 30)
    html = desk.get(url(patient)).get_data(as_text=True)
    last_id = item_ids(html)[-1]
    before = parse_qs(urlsplit(older_link(html)).query)["before"][0]
    at, event_id = decode_cursor(before)
    assert str(event_id) == last_id
    assert sql("SELECT at FROM timeline_event WHERE id = :i", i=last_id)[0][0] == at


def test_ties_across_a_page_boundary_neither_repeat_nor_vanish(desk, patient, history):
    tied = history.consents(patient, 40, same_time=True)
    pages = _pages(desk, url(patient))
    flat = [i for p in pages for i in p]
    assert [len(p) for p in pages] == [25, 16]
    assert flat[1:] == sorted(str(i) for i in tied)[::-1]


def test_events_added_between_page_loads_do_not_shift_older_pages(desk, patient, history):
    history.consents(patient, 40)
    first = desk.get(url(patient)).get_data(as_text=True)
    history.consents(patient, 5, at=T0 + timedelta(days=1))  # newer than everything shown
    second = desk.get(older_link(first)).get_data(as_text=True)
    pages = [item_ids(first), item_ids(second)]
    assert [len(p) for p in pages] == [25, 16]
    assert not set(pages[0]) & set(pages[1])
    assert len(item_ids(desk.get(url(patient)).get_data(as_text=True))) == 25


def test_filters_are_kept_in_the_next_pages_link(desk, patient, history, doctors):
    gp, _ = doctors
    for _ in range(30):
        history.appointment(patient, gp.id)
    history.consents(patient, 3)
    html = desk.get(url(patient, kind="appointment", doctor=str(gp.id))).get_data(as_text=True)
    args = parse_qs(urlsplit(older_link(html)).query)
    assert args["kind"] == ["appointment"] and args["doctor"] == [str(gp.id)] and "before" in args
    pages = _pages(desk, url(patient, kind="appointment", doctor=str(gp.id)))
    assert [len(p) for p in pages] == [25, 5]


# --- htmx and plain requests ----------------------------------------------------------------------------------

def test_plain_request_is_a_page_with_an_older_link(desk, patient, history):
    history.consents(patient, 30)
    response = desk.get(url(patient))
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "HX-Request" in response.headers["Vary"]
    assert "<html" in html and "Timeline" in html and "Sunita Devi Sharma" in html
    link = older_link(html)
    assert link.startswith(f"/patients/{patient}/timeline?before=")
    assert f'hx-get="{link}"' in unescape(html) and 'hx-trigger="revealed"' in html and 'hx-swap="outerHTML"' in html
    older = desk.get(link)
    assert "<html" in older.get_data(as_text=True) and len(item_ids(older.get_data(as_text=True))) == 6
    assert "Newest entries" in older.get_data(as_text=True)


def test_htmx_request_is_the_next_items_alone(desk, patient, history):
    history.consents(patient, 60)
    link = older_link(desk.get(url(patient)).get_data(as_text=True))
    response = desk.get(link, headers=HTMX)
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "HX-Request" in response.headers["Vary"]
    assert "<html" not in html and "<form" not in html and html.lstrip().startswith("<li")
    assert len(item_ids(html)) == 25
    following = older_link(html)
    assert following and following != link
    last = desk.get(following, headers=HTMX).get_data(as_text=True)
    assert len(item_ids(last)) == 11 and "Start of the record" in last and "hx-get" not in last


@pytest.mark.parametrize("cursor", ["nonsense", "A" * 31, "%%%", "A" * 31 + "=", "A" * 33, "/" * 32])
def test_a_bad_cursor_is_a_400_page(desk, patient, cursor):
    response = desk.get(url(patient, before=cursor))
    assert response.status_code == 400
    assert "does not exist" in response.get_data(as_text=True)
    assert desk.get(url(patient, before=cursor), headers=HTMX).status_code == 400


@pytest.mark.parametrize("args", [{"kind": "invoices"}, {"doctor": "not-a-uuid"}, {"speciality": "x" * 61}])
def test_a_bad_filter_is_a_400_page(desk, patient, args):
    assert desk.get(url(patient, **args)).status_code == 400


# --- Access and audit ---------------------------------------------------------------------------------------

def test_every_page_and_fragment_writes_one_audit_record(desk, patient, history, sql):
    history.consents(patient, 30)
    mark = high_water(sql)
    html = desk.get(url(patient)).get_data(as_text=True)
    desk.get(older_link(html), headers=HTMX)
    desk.get(url(patient, kind="consent"))
    records = audit_since(sql, mark)
    assert [r[:3] for r in records] == [("timeline.view", "allowed", patient)] * 3
    assert all(r[4] is None and r[5] is False for r in records)


def test_a_care_doctor_read_is_audited_with_its_basis(as_role, patient, history, sql, doctors):
    doctor = as_role(Role.DOCTOR, "Dr Care")
    history.encounter(patient, doctor.person.id, assessment="ok")
    mark = high_water(sql)
    assert doctor.get(url(patient)).status_code == 200
    assert audit_since(sql, mark) == [("timeline.view", "allowed", patient, None, "care relationship", False)]


def test_auditor_is_refused(as_role, patient):
    assert as_role(Role.AUDITOR).get(url(patient)).status_code == 403


def test_another_clinics_patient_is_404_and_denied(factory, other_clinic, new_browser, patient, sql):
    stranger = new_browser()
    stranger.sign_in(factory.person(other_clinic, Role.RECEPTION))
    mark = high_water(sql)
    assert stranger.get(url(patient)).status_code == 404
    assert [r[:2] for r in audit_since(sql, mark)] == [("timeline.view", "denied")]


def test_several_doctors_or_kinds_page_as_one_stream(desk, patient, history, doctors, sql):
    gp, heart = doctors
    sql("UPDATE staff_user SET speciality = 'Cardiology' WHERE id = :i", i=gp.id)
    for n in range(30):
        history.appointment(patient, gp.id if n % 2 else heart.id)
        history.vitals(patient, {"pulse": 70 + n})
    ordered = [str(r[0]) for r in sql("SELECT id FROM timeline_event WHERE patient_id = :p AND kind = :k "
                                      "ORDER BY at DESC, id DESC", p=patient, k="appointment")]
    pages = _pages(desk, url(patient, speciality="Cardiology"))
    assert [len(p) for p in pages] == [25, 5] and [i for p in pages for i in p] == ordered
    everything = [str(r[0]) for r in sql("SELECT id FROM timeline_event WHERE patient_id = :p AND kind <> 'record' "
                                         "ORDER BY at DESC, id DESC", p=patient)]
    pages = _pages(desk, url(patient, kind=["appointment", "vitals"]))
    assert [len(p) for p in pages] == [25, 25, 10] and [i for p in pages for i in p] == everything
    pages = _pages(desk, url(patient, kind="vitals", speciality="Cardiology"))
    assert pages == [[]]
