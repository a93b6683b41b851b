"""The billing forms: a draft's recipient, a line on a draft, a credit note, a payment or refund. Each gives
the clean values its service takes; a refused one is shown as typed (app/forms.py) with the page's one-line
problem."""

import uuid

from wtforms import StringField
from wtforms.validators import ValidationError

from app.billing.models import CreditReason, PaymentMode
from app.billing.services import Invalid, parse_amount, parse_discount, parse_quantity
from app.billing.setup_services import item_of
from app.clinics.states import BY_CODE, InvalidGstin, state_label, validate_gstin
from app.forms import KeptForm, squeezed

REFERENCE_NEEDED = {PaymentMode.UPI: "the UPI transaction reference (UTR)", PaymentMode.BANK: "the bank UTR"}


def _typed(value: str | None) -> str:
    return (value or "")[:60]


def _choice(kind, text: str | None):
    """The member of the enum `kind` with this value, or None (a tampered or empty choice)."""
    try:
        return kind(text or "")
    except ValueError:
        return None


class PaymentForm(KeptForm):
    """How the money was paid, how much (rupees, at most two decimals, above zero) and, for UPI and bank
    transfers, its reference."""

    mode = StringField(filters=[_typed])
    amount = StringField(filters=[_typed])
    reference = StringField(filters=[squeezed(40)])

    def validate(self, extra_validators=None) -> bool:
        self.problems: dict[str, str] = {}
        return super().validate(extra_validators)

    def _refuse(self, field, message: str, problem: str | None = None):
        self.problems[field.name] = problem or message
        raise ValidationError(message)

    def validate_mode(self, field):
        if _choice(PaymentMode, field.data) is None:
            self._refuse(field, "Choose cash, UPI, card or bank transfer.", "Choose how the money was paid.")

    def validate_amount(self, field):
        try:
            parse_amount(field.data, "Amount", field="amount")
        except Invalid as exc:
            self._refuse(field, exc.errors["amount"], str(exc))

    def validate_reference(self, field):
        needed = REFERENCE_NEEDED.get(_choice(PaymentMode, self.mode.data))
        if needed and not field.data:
            self._refuse(field, f"Enter {needed}.")

    def problem(self) -> str:
        """The page's line about the first field refused (mode, amount, reference)."""
        return next(self.problems[name] for name in ("mode", "amount", "reference") if name in self.problems)

    def values(self) -> dict:
        """Mode, amount and reference as the payment services take them."""
        return {"mode": _choice(PaymentMode, self.mode.data),
                "amount": parse_amount(self.amount.data, "Amount", field="amount"),
                "reference": self.reference.data or None}


# --- A line on a draft ------------------------------------------------------------------------------------

def _line_text(value: str | None) -> str:
    return (value or "").strip()[:200]


def _parsed(parse):
    """A validator from a billing parser (`parse(form, text)`): its per-field message as the field's error."""
    def check(form, field):
        try:
            parse(form, field.data)
        except Invalid as exc:
            raise ValidationError(next(iter(exc.errors.values()))) from exc
    return check


def _quantity(form, text: str):
    return parse_quantity(text)


def _discount(form, text: str):
    return parse_discount(text, form.discount_kind.data == "percent")


class LineForm(KeptForm):
    """A price-list item chosen (`item_id`) or typed by its code (a code wins), a quantity, a discount in
    rupees or percent. Built for a clinic: the item is looked up on its price list."""

    item_id = StringField(filters=[_line_text])
    code = StringField(filters=[_line_text])
    quantity = StringField(filters=[_line_text], validators=[_parsed(_quantity)])
    discount = StringField(filters=[_line_text], validators=[_parsed(_discount)])
    discount_kind = StringField(filters=[_line_text])

    def __init__(self, *args, db, clinic_id, **kwargs):
        super().__init__(*args, **kwargs)
        self.db, self.clinic_id, self.item = db, clinic_id, None

    def validate(self, extra_validators=None) -> bool:
        valid = super().validate(extra_validators)
        try:
            self.item = item_of(self.db, self.clinic_id, {"code": self.code.data, "item_id": self.item_id.data})
        except Invalid as exc:
            for name, message in exc.errors.items():
                self[name].errors.append(message)
            valid = False
        return valid

    def problem(self) -> str:
        return "Check the line: " + " ".join(self.messages().values())

    def values(self) -> dict:
        """The item, quantity and discount as services.add_line takes them."""
        return {"item": self.item, "quantity": _quantity(self, self.quantity.data),
                "discount": _discount(self, self.discount.data)}


# --- A credit note ----------------------------------------------------------------------------------------

def _short(value: str | None) -> str:
    return (value or "")[:20]


def _credited(form, field):
    """A quantity to credit on one line: none (empty or 0), or any for a cancellation (all is credited)."""
    if field.data.strip() not in ("", "0") and _choice(CreditReason, form.reason.data) is not CreditReason.CANCEL:
        _parsed(_quantity)(form, field)


class CreditForm(KeptForm):
    """Why the credit note is issued, and the quantity to credit on each of the original's lines
    (`qty-<line id>`): a form class per document, from `for_lines`."""

    reason = StringField(filters=[_short])

    @classmethod
    def for_lines(cls, lines) -> type["CreditForm"]:
        """The form for a document with these lines (pages.CreditLine)."""
        fields = {f"qty-{row.line.id}": StringField(filters=[_short], validators=[_credited]) for row in lines}
        return type("CreditLinesForm", (cls,), fields)

    def validate_reason(self, field):
        if _choice(CreditReason, field.data) is None:
            raise ValidationError("Choose why the credit note is issued.")

    def problem(self) -> str:
        return "Check the credit note: " + " ".join(self.messages().values())

    def values(self) -> dict:
        """The quantities by original line id and the reason, as credit_notes.issue_credit_note takes them."""
        reason = _choice(CreditReason, self.reason.data)
        quantities = {uuid.UUID(name.removeprefix("qty-")): parse_quantity(f.data) for name, f in self._fields.items()
                      if name.startswith("qty-") and f.data.strip() not in ("", "0")}
        return {"quantities": {} if reason is CreditReason.CANCEL else quantities, "reason": reason}


class RecipientForm(KeptForm):
    """Who a draft is issued to: a valid GSTIN if given (the one validator; a registered recipient's state is
    its GSTIN's and its legal name is required), a known state, a 6-digit PIN."""

    name, address_line, city, phone = (StringField(filters=[squeezed(200)]) for _ in range(4))
    pin_code = StringField(filters=[squeezed(200)])
    state_code = StringField(filters=[squeezed(200)])
    gstin = StringField(filters=[squeezed(200)])

    def validate_gstin(self, field):
        if not field.data:
            return
        try:
            field.data = validate_gstin(field.data)
        except InvalidGstin as exc:
            raise ValidationError(str(exc)) from exc

    def validate_state_code(self, field):
        if field.data and field.data not in BY_CODE:
            raise ValidationError("Choose a state from the list.")

    def validate_pin_code(self, field):
        if field.data and not (field.data.isdecimal() and len(field.data) == 6):
            raise ValidationError("A PIN code has 6 digits.")

    def validate(self, extra_validators=None) -> bool:
        valid = super().validate(extra_validators)
        registered = self.gstin.data and not self.gstin.errors
        if registered and self.state_code.data and self.state_code.data != self.gstin.data[:2]:
            self.state_code.errors.append(f"The GSTIN is registered in {state_label(self.gstin.data[:2])}.")
            valid = False
        if self.gstin.data and not self.name.data:
            self.name.errors.append("A registered recipient's legal name is required.")
            valid = False
        return valid

    def values(self) -> dict:
        """The recipient as services.set_recipient takes it (a registered recipient's state is its GSTIN's)."""
        values = {name: f.data for name, f in self._fields.items() if name != "csrf_token"}
        return values | ({"state_code": values["gstin"][:2]} if values["gstin"] else {})
