"""Billing setup forms: the GST profile, a price item (with its first GST rate when taxable) and a dated GST
rate. Each gives the clean values setup_services takes; a refused one is shown as typed (app/forms.py)."""

import re
from datetime import date
from decimal import Decimal, InvalidOperation

from wtforms import BooleanField, StringField
from wtforms.validators import DataRequired, Regexp, ValidationError

from app.billing import tax
from app.billing.services import Invalid, parse_amount
from app.billing.setup_services import CLINIC_FIELDS, GST_START, PREFIX, PROFILE_FIELDS, SERIES, STATE_CODES, UNITS
from app.clinics.states import InvalidGstin, validate_clinic_gstin, validate_gstin
from app.forms import KeptForm, squeeze, squeezed

CODE = re.compile(r"[A-Z0-9][A-Z0-9-]{0,23}")
HSN = re.compile(r"[0-9]{4}|[0-9]{6}|[0-9]{8}")
LAST_DAY = date(2099, 12, 31)


def _typed(value: str | None) -> str:
    return (value or "")[:200]


def _day(text: str) -> date | None:
    try:
        since = date.fromisoformat(text.strip())
    except ValueError:
        return None
    return since if GST_START <= since <= LAST_DAY else None


def _treatment(text: str) -> tax.Treatment | None:
    try:
        return tax.Treatment(text)
    except ValueError:
        return None


def _rate(text: str) -> Decimal | None:
    try:
        rate = Decimal(text.strip().removesuffix("%").strip())
    except InvalidOperation:
        return None
    return rate if rate.is_finite() and 0 <= rate < 100 and rate == rate.quantize(Decimal("0.01")) else None


class RateForm(KeptForm):
    """A GST rate from a date: a date from 1 July 2017 on, a rate from 0 to under 100 with two decimals."""

    effective_from = StringField(filters=[_typed])
    rate = StringField(filters=[_typed])

    def validate_effective_from(self, field):
        if _day(field.data) is None:
            raise ValidationError("Enter the date the rate applies from (1 July 2017 or later).")

    def validate_rate(self, field):
        if _rate(field.data) is None:
            raise ValidationError("A GST rate from 0 to under 100, at most two decimals (e.g. 5 or 18).")

    def dated_rate(self) -> tuple[date, Decimal]:
        """(effective from, rate) as setup_services.add_rate takes them."""
        return _day(self.effective_from.data), _rate(self.rate.data).quantize(Decimal("0.01"))


class PriceItemForm(RateForm):
    """A price item: code (new items only), name, HSN/SAC, unit, price, GST treatment, fee validity, active;
    a taxable item's first rate when `needs_rate`. Built for the item being edited (None: a new one)."""

    code = StringField(filters=[_typed])
    name = StringField(filters=[_typed])
    hsn_sac = StringField(filters=[_typed])
    unit = StringField(filters=[_typed])
    price = StringField(filters=[_typed])
    treatment = StringField(filters=[_typed])
    price_includes_tax, fee_validity, active = BooleanField(), BooleanField(), BooleanField()

    def __init__(self, *args, item, needs_rate: bool, **kwargs):
        super().__init__(*args, **kwargs)
        self.item, self.needs_rate = item, needs_rate

    def text(self, name: str) -> str:
        """A text field as saved: whitespace squeezed, cut to its size."""
        return squeeze(self[name].data)[:120 if name == "name" else 60]

    def clean_code(self) -> str:
        return self.item.code if self.item else self.text("code").upper()

    def validate_code(self, field):
        if not CODE.fullmatch(self.clean_code()):
            raise ValidationError("Up to 24 letters, digits and hyphens (A-Z, 0-9, -), starting with a letter or "
                                  "digit.")

    def validate_name(self, field):
        if not self.text("name"):
            raise ValidationError("Required.")

    def validate_hsn_sac(self, field):
        if not HSN.fullmatch(self.text("hsn_sac")):
            raise ValidationError("4, 6 or 8 digits: an HSN code for goods, or a SAC (starting 99) for services.")

    def validate_unit(self, field):
        if self.text("unit") not in UNITS and not (self.item and self.text("unit") == self.item.unit):
            raise ValidationError("Choose a unit (UQC) from the list.")

    def validate_treatment(self, field):
        if _treatment(self.text("treatment")) is None:
            raise ValidationError("Choose taxable, exempt or nil-rated.")

    def validate_price(self, field):
        try:
            parse_amount(field.data, "Price", field="price", allow_zero=True)
        except Invalid as exc:
            raise ValidationError(exc.errors["price"]) from exc

    def validate_fee_validity(self, field):
        if field.data and not self.text("hsn_sac").startswith("99"):
            raise ValidationError("Only a consultation (a service, SAC 99…) can be free on a follow-up.")

    def rate_needed(self) -> bool:
        return self.needs_rate and _treatment(self.text("treatment")) is tax.Treatment.TAXABLE

    def validate_effective_from(self, field):
        if self.rate_needed():
            super().validate_effective_from(field)

    def validate_rate(self, field):
        if self.rate_needed():
            super().validate_rate(field)

    def values(self) -> dict:
        """The item's values as setup_services.create_item and update_item take them."""
        values = {name: self.text(name) for name in ("name", "hsn_sac", "unit")}
        values |= {"code": self.clean_code(), "treatment": _treatment(self.text("treatment")),
                   "price": parse_amount(self.price.data, "Price", field="price", allow_zero=True),
                   **{name: self[name].data for name in ("price_includes_tax", "fee_validity", "active")}}
        return values | ({"rate": self.dated_rate()} if self.rate_needed() else {})


# --- The GST profile --------------------------------------------------------------------------------------

def _text(limit: int = 60) -> StringField:
    return StringField(filters=[squeezed(limit)])


def _required(limit: int) -> StringField:
    return StringField(filters=[squeezed(limit)], validators=[DataRequired("Required.")])


def _prefix(form, field):
    """1 to 4 letters or digits, not the prefix of an earlier series."""
    prefix = field.data.upper()
    if not PREFIX.fullmatch(prefix):
        raise ValidationError("1 to 4 letters or digits (A-Z, 0-9), no spaces or symbols.")
    earlier = next(label for name, _, label, _ in SERIES if form[name].data.upper() == prefix)
    if earlier != next(label for name, _, label, _ in SERIES if name == field.name):
        raise ValidationError(f"Already used for {earlier.lower()}: each series needs its own prefix.")


class ProfileForm(KeptForm):
    """The clinic's GST particulars (a GSTIN, if given, valid and of the clinic's state), its signatory, the
    four document series' prefixes (each its own) and the fee validity in days (0 to 90)."""

    legal_name, address_line, city = _required(200), _required(300), _required(100)
    pin_code = StringField(filters=[squeezed(60)], validators=[DataRequired("Required."), Regexp(
        r"^[1-9][0-9]{5}$", message="A PIN code has 6 digits and does not start with 0.")])
    state_code, gstin = _text(), _text()
    signatory_name, signatory_designation = _required(120), _required(80)
    invoice_prefix, bill_of_supply_prefix, credit_note_prefix, receipt_prefix = (
        StringField(filters=[squeezed(60)], validators=[_prefix]) for _ in range(4))
    fee_validity_days = _text()

    def validate_state_code(self, field):
        if field.data not in STATE_CODES:
            raise ValidationError("Choose the state or union territory the clinic is registered in.")

    def validate_gstin(self, field):
        if not field.data:
            return
        state = self.state_code.data
        try:  # against the clinic's state once that is known (the one validator of app/clinics/states.py)
            validate_clinic_gstin(field.data, state) if state in STATE_CODES else validate_gstin(field.data)
        except InvalidGstin as exc:
            raise ValidationError(str(exc)) from exc

    def validate_fee_validity_days(self, field):
        days = field.data or "0"
        if not (days.isdecimal() and int(days) <= 90):
            raise ValidationError("A number of days from 0 to 90 (0 turns free follow-ups off).")

    def values(self) -> dict:
        """The profile as setup_services.save_profile takes it."""
        values = {name: self[name].data for name in (*CLINIC_FIELDS, *PROFILE_FIELDS)}
        values |= {name: values[name].upper() for name, _, _, _ in SERIES}
        gstin = values["gstin"] and validate_gstin(values["gstin"])
        return values | {"gstin": gstin, "fee_validity_days": int(values["fee_validity_days"] or "0")}
