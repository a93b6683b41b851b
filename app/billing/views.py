"""Billing documents at the desk: the billing home, drafts (lines, recipient, live preview), issuing,
the issued document's page and credit notes.

Every response that shows a recipient or a patient writes one audit record. Refusals roll back first:
422 (input kept, messages per field) or 409 (a billing rule, a stale draft, an issued document).
"""

import uuid

from flask import Blueprint, abort, flash, g, request, url_for
from flask_login import current_user
from sqlalchemy import select

from app.audit.services import load_or_404, record
from app.auth.policy import Permission, can, requires
from app.billing import credit_notes, issuing, pages, services
from app.billing.documents import TITLES, paper, pdf_state
from app.billing.forms import CreditForm, LineForm, RecipientForm
from app.billing.models import Bill, BillStatus
from app.billing.pages import payment_panel
from app.billing.pdf import render_after_commit
from app.db import get_session
from app.htmx import client_redirect, is_htmx, render
from app.patients.models import Patient
from app.patients.services import search as search_patients
from app.scheduling import services as schedule
from app.scheduling.models import Appointment

bp = Blueprint("billing", __name__)
PAGE = "billing/show.html"


@bp.app_context_processor
def billing_globals() -> dict:
    """For the appointment and patient pages: may this role bill, and a patient's documents."""
    return {"can_bill": can(g.get("role"), Permission.INVOICE_CREATE), "patient_bills": patient_bills}


def patient_bills(patient_id) -> list[dict] | None:
    """The patient's documents for the patient page (None for a role that does not see bills there)."""
    if not can(g.get("role"), Permission.INVOICE_VIEW):
        return None
    return pages.bills_of_patient(get_session(), g.clinic.id, uuid.UUID(str(patient_id)))



def audit(action: str, bill: Bill, **kw) -> None:
    record(get_session(), action, patient_id=bill.patient_id, object_type="bill", object_id=bill.id, **kw)


def today():
    return schedule.today(g.clinic)


# --- The billing home ---------------------------------------------------------------------------------

def _home(status: int = 200, *, block: str = "picker", **state):
    db = get_session()
    lists = pages.home(db, g.clinic, today())
    results = state.pop("results", [])
    ids = lists.patient_ids + [p.id for p, _ in results]
    record(db, "bill.list", patient_ids=ids, object_type="bill")
    db.commit()
    return render("billing/index.html", block, status=status, home=lists, results=results, day=today(), titles=TITLES,
                  q=state.pop("q", ""), **{"problem": None, "number": "", "not_found": False, **state})


@bp.get("/billing")
@requires(Permission.INVOICE_VIEW)
def index():
    """The desk's billing home: new bill, today's documents, drafts, visits to bill, find by number."""
    number = request.args.get("number", "").strip()[:20]
    if number:
        found = pages.by_number(get_session(), g.clinic.id, number)
        if found is not None:
            return client_redirect(url_for("billing.show", bill_id=found.id))
    return _home(number=number, not_found=bool(number))


@bp.post("/bills/new")
@requires(Permission.INVOICE_CREATE)
def create():
    """Start a draft for a patient, a completed visit or a walk-in customer (or search for the patient)."""
    if request.form.get("intent") == "search":
        return _pick()
    db = get_session()
    appointment = _appointment()
    if appointment is not None:
        existing = _existing(appointment)
        if existing is not None:
            return existing
    patient = None
    patient_id = appointment.patient_id if appointment else _uuid(request.form.get("patient_id"))
    if patient_id is not None:
        patient = load_or_404(Patient, patient_id, "bill.create")
    try:
        bill = services.new_draft(db, clinic=g.clinic, patient=patient, appointment=appointment,
                                  by=current_user.id, day=today())
    except services.BillingError as exc:
        db.rollback()
        return _home(409, block="picker", problem=str(exc))
    audit("bill.create", bill)
    db.commit()
    return client_redirect(url_for("billing.show", bill_id=bill.id))


def _pick():
    """The patient picker's results (search as you type), audited like the patient search."""
    q = request.form.get("q", "").strip()[:100]
    db = get_session()
    results = search_patients(db, g.clinic.id, q) if q else []
    if not is_htmx():  # the whole page: its one audit record names these patients too
        return _home(q=q, results=results)
    if q:
        record(db, "patient.search", patient_ids=[p.id for p, _ in results], object_type="patient")
        db.commit()
    return render("billing/index.html", "picker_results", q=q, results=results)


def _uuid(raw: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID((raw or "").strip()) if (raw or "").strip() else None
    except ValueError:
        abort(400)


def _appointment() -> Appointment | None:
    appointment_id = _uuid(request.form.get("appointment_id"))
    if appointment_id is None:
        return None
    return load_or_404(Appointment, appointment_id, "bill.create", for_update=True)


def _existing(appointment: Appointment):
    """A visit already billed: its draft to carry on, or its document (with a message)."""
    db = get_session()
    # A cancelled document no longer bills the visit: it may be billed afresh.
    bills = list(db.scalars(select(Bill).where(Bill.clinic_id == g.clinic.id, Bill.appointment_id == appointment.id,
                                               Bill.original_id.is_(None), Bill.cancelled_at.is_(None))
                            .order_by(Bill.created_at)))
    draft = next((b for b in bills if b.status is BillStatus.DRAFT), None)
    issued = next((b for b in bills if b.issued), None)
    if draft is None and issued is None:
        return None
    if draft is None:
        flash(f"This visit is already billed: {issued.number}.", "warning")
    db.commit()
    return client_redirect(url_for("billing.show", bill_id=(draft or issued).id))


# --- A document's page and the draft editor -----------------------------------------------------------

def _document_context(bill: Bill) -> dict:
    db = get_session()
    context = {"bill": bill, "paper": paper(db, bill), "title": pages.title_of(bill), "states": pages.STATE_CHOICES}
    if bill.issued:
        original = db.get(Bill, (bill.clinic_id, bill.original_id)) if bill.original_id else None
        context.update(pdf_state=pdf_state(db, bill), pay=payment_panel(db, bill), original=original,
                       notes=credit_notes.credit_notes_of(db, bill) if not bill.is_credit_note else [],
                       history=pages.history_rows(db, bill),
                       can_credit=can(g.role, Permission.CREDIT_NOTE_CREATE) and not bill.is_credit_note
                       and bill.cancelled_at is None)
    return context


def _page(bill: Bill, status: int = 200, *, action: str = "bill.view", reason: str | None = None, **state):
    """The document's page (or, for htmx, the editor block), with its one audit record (`action`)."""
    db = get_session()
    context = _document_context(bill)
    if not bill.issued:
        context["ed"] = pages.editor(db, g.clinic, bill, **state)
    else:
        context["problem"] = state.get("problem")
    audit(action, bill, reason=reason)
    db.commit()
    return render(PAGE, "editor", status=status, **context)


@bp.get("/bills/<uuid:bill_id>")
@requires(Permission.INVOICE_VIEW)
def show(bill_id):
    """A draft with its editor and live preview, or the issued document with its PDF, payments and history."""
    return _page(load_or_404(Bill, bill_id, "bill.view"))


def _refused(bill_id: uuid.UUID, action: str, exc: services.BillingError, **state):
    """A change refused: nothing saved; the editor again with the message (and the input as typed)."""
    db = get_session()
    db.rollback()
    bill = load_or_404(Bill, bill_id, action)
    status = 422 if isinstance(exc, services.Invalid) else 409
    if isinstance(exc, services.Invalid):
        state["errors"] = exc.errors
    return _page(bill, status, action=action, reason=f"not saved: {type(exc).__name__.lower()}", problem=str(exc),
                 **state)


def _changed(bill: Bill, action: str):
    """After a change: the editor block for htmx, else back to the page (303)."""
    if is_htmx():
        return _page(bill, action=action)
    audit(action, bill)
    get_session().commit()
    return client_redirect(url_for("billing.show", bill_id=bill.id))


def _draft_only(bill: Bill) -> None:
    """Refuse a change to an issued document before looking at the input (409, not 422)."""
    if bill.issued:
        raise services.BillingError(f"{bill.number} is issued and cannot be changed: issue a credit note instead.")


@bp.post("/bills/<uuid:bill_id>/lines")
@requires(Permission.INVOICE_CREATE)
def add_line(bill_id):
    """Add a price-list item (chosen or typed by code) with a quantity and a discount."""
    db = get_session()
    bill = load_or_404(Bill, bill_id, "bill.line_add", for_update=True)
    form = LineForm(db=db, clinic_id=g.clinic.id)
    try:
        _draft_only(bill)
        if not form.validate():
            raise services.Invalid(form.problem(), form.messages())
        services.add_line(db, bill, **form.values(), by=current_user.id, day=today())
    except services.BillingError as exc:
        return _refused(bill_id, "bill.line_add", exc, line_form=form.typed())
    return _changed(bill, "bill.line_add")


@bp.post("/bills/<uuid:bill_id>/lines/<uuid:line_id>/remove")
@requires(Permission.INVOICE_CREATE)
def remove_line(bill_id, line_id):
    """Take a line off a draft."""
    db = get_session()
    bill = load_or_404(Bill, bill_id, "bill.line_remove", for_update=True)
    try:
        services.remove_line(db, bill, line_id, by=current_user.id, day=today())
    except services.BillingError as exc:
        return _refused(bill_id, "bill.line_remove", exc)
    return _changed(bill, "bill.line_remove")


@bp.post("/bills/<uuid:bill_id>/recipient")
@requires(Permission.INVOICE_CREATE)
def recipient(bill_id):
    """Set who the document is issued to (a GSTIN makes it a B2B document)."""
    db = get_session()
    bill = load_or_404(Bill, bill_id, "bill.recipient", for_update=True)
    form = RecipientForm()
    try:
        if not form.validate():
            raise services.Invalid("Check the recipient's details.", form.messages())
        services.set_recipient(db, bill, form.values(), by=current_user.id)
    except services.BillingError as exc:
        return _refused(bill_id, "bill.recipient", exc, recipient=form.typed())
    return _changed(bill, "bill.recipient")


@bp.post("/bills/<uuid:bill_id>/issue")
@requires(Permission.INVOICE_CREATE)
def issue(bill_id):
    """Issue the draft as the user last saw it: numbered and frozen (two documents for a B2B mixed supply)."""
    db = get_session()
    bill = load_or_404(Bill, bill_id, "bill.issue", for_update=True)
    raw = request.form.get("version", "")
    version = int(raw) if raw.isdecimal() and len(raw) < 9 else -1
    if bill.issued:  # the same form sent again (a double click, a retry, another tab): show what was issued
        numbers = " and ".join(d.number for d in pages.issued_together(db, bill))
        flash(f"This draft was already issued as {numbers}.", "info")
        db.commit()
        return client_redirect(url_for("billing.show", bill_id=bill.id))
    try:
        documents = issuing.issue(db, clinic=g.clinic, bill=bill, by=current_user.id, day=today(), version=version)
    except services.BillingError as exc:
        return _refused(bill_id, "bill.issue", exc)
    audit("bill.issue", bill, reason=" + ".join(d.number for d in documents))
    render_after_commit(db, g.clinic.id, [d.id for d in documents])
    db.commit()
    if len(documents) > 1:
        flash("Issued as two documents: " + " and ".join(d.number for d in documents) + ".", "success")
    return client_redirect(url_for("billing.show", bill_id=documents[0].id))


@bp.post("/bills/<uuid:bill_id>/discard")
@requires(Permission.INVOICE_CREATE)
def discard(bill_id):
    """Delete a draft (an issued document is never deleted)."""
    db = get_session()
    bill = load_or_404(Bill, bill_id, "bill.discard", for_update=True)
    patient_id = bill.patient_id
    try:
        services.discard(db, bill, by=current_user.id)
    except services.BillingError as exc:
        return _refused(bill_id, "bill.discard", exc)
    record(db, "bill.discard", patient_id=patient_id, object_type="bill", object_id=bill_id)
    db.commit()
    flash("The draft is discarded.", "success")
    return client_redirect(url_for("billing.index"))


# --- Credit notes ----------------------------------------------------------------------------------------

def _credit_page(original: Bill, status: int = 200, *, form=None, errors=None, problem=None):
    db = get_session()
    context = {"bill": original, "title": pages.title_of(original), "lines": pages.credit_lines(db, original, form),
               "reasons": pages.REASON_CHOICES, "reason": (form or {}).get("reason", ""), "errors": errors or {},
               "problem": problem, "recipient": services.recipient_of(db, original).get("name", "")}
    audit("bill.credit_note_form", original)
    db.commit()
    return render("billing/credit_note.html", "credit_form", status=status, **context)


def _creditable(original: Bill) -> str | None:
    if not original.issued or original.is_credit_note:
        return "A credit note is issued against an issued invoice or bill of supply."
    if original.cancelled_at is not None:
        return f"{original.number} is already cancelled."
    return None


@bp.get("/bills/<uuid:bill_id>/credit-note")
@requires(Permission.CREDIT_NOTE_CREATE)
def credit_note_form(bill_id):
    """The credit-note form: each line with what is left to credit, and the reason."""
    original = load_or_404(Bill, bill_id, "bill.credit_note_form")
    problem = _creditable(original)
    return _credit_page(original, 409 if problem else 200, problem=problem)


@bp.post("/bills/<uuid:bill_id>/credit-note")
@requires(Permission.CREDIT_NOTE_CREATE)
def credit_note(bill_id):
    """Issue a credit note against the document (a cancellation credits it all and marks it cancelled)."""
    db = get_session()
    original = load_or_404(Bill, bill_id, "bill.credit_note", for_update=True)
    form = CreditForm.for_lines(pages.credit_lines(db, original))()
    try:
        if not form.validate():
            raise services.Invalid(form.problem(), form.messages())
        note = credit_notes.issue_credit_note(db, clinic=g.clinic, original=original, **form.values(),
                                              by=current_user.id, day=today())
    except services.BillingError as exc:
        db.rollback()
        original = load_or_404(Bill, bill_id, "bill.credit_note")
        errors = exc.errors if isinstance(exc, services.Invalid) else {}
        return _credit_page(original, 422 if isinstance(exc, services.Invalid) else 409, form=form.typed(),
                            errors=errors, problem=str(exc))
    audit("bill.credit_note", note, reason=f"{note.number} against {original.number}")
    render_after_commit(db, g.clinic.id, [note.id])
    db.commit()
    return client_redirect(url_for("billing.show", bill_id=note.id))
