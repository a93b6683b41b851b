"""GST profile and price list (admin, billing).

Not PHI: pages are not read-audited; every write is (one record, committed with the change).
"""


from flask import Blueprint, flash, g, request, url_for
from flask_login import current_user

from app import formats
from app.audit.services import load_or_404, record
from app.auth.policy import Permission, requires
from app.billing import setup_services
from app.billing.models import PriceItem
from app.billing.services import BillingError, Invalid, not_ready, profile_of
from app.billing.setup_forms import PriceItemForm, ProfileForm, RateForm
from app.clinics.states import STATES, state_label
from app.db import get_session
from app.htmx import client_redirect, render
from app.scheduling.services import today

bp = Blueprint("billing_setup", __name__)
PROFILE = "billing/setup/profile.html"
PRICES = "billing/setup/prices.html"
ITEM = "billing/setup/item.html"
REFUSED = "Check the highlighted fields; nothing was saved."


# --- The GST profile --------------------------------------------------------------------------------

def _profile_page(values: dict, status: int = 200, errors: dict | None = None, problem: str | None = None):
    db = get_session()
    return render(PROFILE, "profile_form", status=status, values=values, errors=errors or {}, problem=problem,
                  states=[(s.code, state_label(s.code)) for s in STATES], series=setup_services.SERIES,
                  examples=setup_services.number_examples(values, today(g.clinic)),
                  readiness=not_ready(g.clinic, profile_of(db, g.clinic.id)))


@bp.get("/billing/profile")
@requires(Permission.BILLING_SETUP)
def profile():
    """The clinic's GST identity, signatory, document series and fee validity."""
    return _profile_page(setup_services.profile_values(g.clinic, profile_of(get_session(), g.clinic.id)))


@bp.post("/billing/profile")
@requires(Permission.BILLING_SETUP)
def profile_post():
    """Save the GST profile; documents issued from now on print it."""
    db, form = get_session(), ProfileForm()
    try:
        if not form.validate():
            raise Invalid(REFUSED, form.messages())
        changed = setup_services.save_profile(db, g.clinic, form.values(), by=current_user.id)
    except Invalid as exc:
        db.rollback()
        return _profile_page(form.typed(), 422, exc.errors, str(exc))
    record(db, "billing.profile_update", object_type="clinic", object_id=g.clinic.id,
           reason="changed: " + (", ".join(changed) or "nothing"))
    db.commit()
    flash("GST profile saved. Documents issued from now on use it; issued documents keep what they printed.",
          "success")
    return client_redirect(url_for("billing_setup.profile"))


# --- The price list ---------------------------------------------------------------------------------

@bp.get("/billing/prices")
@requires(Permission.BILLING_SETUP)
def prices():
    """The price list with each item's GST rate today and any rate to come (filter by name or code)."""
    q = " ".join(request.args.get("q", "").split())[:60]
    inactive = request.args.get("inactive") == "1"
    day = today(g.clinic)
    rows = setup_services.price_rows(get_session(), g.clinic.id, day, q=q, inactive=inactive)
    return render(PRICES, "price_table", rows=rows, q=q, inactive=inactive, day=day,
                  treatments=setup_services.TREATMENTS)


def _item_page(item: PriceItem | None, values: dict, status: int = 200, errors: dict | None = None,
               problem: str | None = None, rate_errors: dict | None = None, rate_values: dict | None = None):
    db, day = get_session(), today(g.clinic)
    return render(ITEM, "item_form", status=status, item=item, values=values, errors=errors or {}, problem=problem,
                  needs_rate=item is None or not setup_services.has_rates(db, item),
                  units=setup_services.UNIT_OPTIONS, treatments=setup_services.TREATMENT_OPTIONS,
                  common_rates=setup_services.COMMON_RATES,
                  day=day, rates=setup_services.rates_of(db, item, day) if item else [],
                  rate_values=rate_values or {"effective_from": day.isoformat(), "rate": ""},
                  rate_errors=rate_errors or {})


@bp.get("/billing/prices/new")
@requires(Permission.BILLING_SETUP)
def item_new():
    """The form for a new price item."""
    return _item_page(None, setup_services.item_values(None, today(g.clinic)))


@bp.post("/billing/prices/new")
@requires(Permission.BILLING_SETUP)
def item_create():
    """Add an item to the price list (a taxable one with its first GST rate)."""
    db, form = get_session(), PriceItemForm(item=None, needs_rate=True)
    if not form.validate():
        return _item_page(None, form.typed(), 422, form.messages(), REFUSED)
    try:
        item = setup_services.create_item(db, g.clinic.id, form.values(), by=current_user.id)
    except Invalid as exc:
        db.rollback()
        return _item_page(None, form.typed(), 422, exc.errors, str(exc))
    record(db, "billing.price_item_create", object_type="price_item", object_id=item.id, reason=item.code)
    db.commit()
    flash(f"{item.code} added to the price list.", "success")
    return client_redirect(url_for("billing_setup.item", price_item_id=item.id))


@bp.get("/billing/prices/<uuid:price_item_id>")
@requires(Permission.BILLING_SETUP)
def item(price_item_id):
    """An item's form and its GST rate history."""
    found = load_or_404(PriceItem, price_item_id, "billing.price_item_view")
    return _item_page(found, setup_services.item_values(found, today(g.clinic)))


@bp.post("/billing/prices/<uuid:price_item_id>")
@requires(Permission.BILLING_SETUP)
def item_update(price_item_id):
    """Save changes to an item; documents already issued keep the values they copied."""
    db = get_session()
    # Locked: the version check holds until the commit.
    found = load_or_404(PriceItem, price_item_id, "billing.price_item_update", for_update=True)
    form = PriceItemForm(item=found, needs_rate=not setup_services.has_rates(db, found))
    try:
        setup_services.check_version(found, request.form.get("version"))
        if not form.validate():
            raise Invalid(REFUSED, form.messages())
        changed = setup_services.update_item(db, found, form.values(), by=current_user.id)
    except BillingError as exc:
        db.rollback()
        status, errors = (422, exc.errors) if isinstance(exc, Invalid) else (409, {})
        return _item_page(found, form.typed(), status, errors, str(exc))
    record(db, "billing.price_item_update", object_type="price_item", object_id=found.id,
           reason=f"{found.code} v{found.version}: " + (", ".join(changed) or "nothing"))
    db.commit()
    flash(f"{found.code} saved. Documents already issued keep the values they were issued with.", "success")
    return client_redirect(url_for("billing_setup.item", price_item_id=found.id))


@bp.post("/billing/prices/<uuid:price_item_id>/rates")
@requires(Permission.BILLING_SETUP)
def rate_add(price_item_id):
    """Append a GST rate from a date (never replacing one)."""
    db = get_session()
    found = load_or_404(PriceItem, price_item_id, "billing.price_rate_add")
    form = RateForm()
    try:
        if not form.validate():
            raise Invalid("Check the GST rate.", form.messages())
        since, rate = form.dated_rate()
        setup_services.add_rate(db, found, since, rate, by=current_user.id)
    except Invalid as exc:
        db.rollback()
        typed = {name: value[:20] for name, value in form.typed().items()}
        return _item_page(found, setup_services.item_values(found, today(g.clinic)), 422, problem=str(exc),
                          rate_errors=exc.errors, rate_values=typed)
    record(db, "billing.price_rate_add", object_type="price_item", object_id=found.id,
           reason=f"{found.code}: {rate}% from {since.isoformat()}")
    db.commit()
    flash(f"GST rate {rate}% from {formats.day(since)} added to {found.code}.", "success")
    return client_redirect(url_for("billing_setup.item", price_item_id=found.id))
