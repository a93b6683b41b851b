"""The GST engine: what each line of a document is worth, its tax, the document's totals and type.

Pure functions over plain frozen dataclasses; no database, no clock. The law and the choices behind
each convention are in shared/reference/gst.md; tests/billing/test_tax.py pins every one in paise.

Money
- Decimal only (a float input is a TypeError), ROUND_HALF_UP: halves go away from zero, to the paisa
  for every amount and to the rupee for the grand total.

A line
- gross = paise(quantity x unit price).
- The discount comes off before tax (Rule 46(k)): an amount is for the whole line; a percentage is
  paise(gross x percent / 100). It may not exceed the gross.
- Tax-exclusive price: taxable value = gross - discount, and each tax component is
  paise(taxable value x component rate / 100).
- MRP (tax-inclusive) price, Rule 35: value = gross - discount is what the patient pays; each component
  is paise(value x component rate / (100 + GST rate)) and the taxable value is the remainder, value - the
  rounded components. So the printed line total equals the MRP (times quantity, less discount) exactly.
  Recomputing taxable value x rate can differ from the stored component by a paisa; the stored one stands.
- Intra-state: CGST and SGST each at half the rate, computed from the same value (so always equal);
  UTGST takes SGST's place when the supplier's state is a union territory without a legislature (04,
  25, 26, 31, 35, 38, 97; see app/clinics/states.py). Inter-state: IGST at the full rate.
- Exempt and nil-rated lines carry no tax; their value is the exempt or nil value of the supply.
- The GST rate is an input: the rate in force on the document date (rate_in_force), copied onto the
  line. The engine never looks a rate up, so a rate change never touches an issued document.

Place of supply, per line (IGST Act)
- A service (SAC, a code starting "99": consultations, procedures, cosmetic treatment) is supplied where
  it is performed, s.12(4): the clinic's state, whoever the recipient is.
- Goods to a registered recipient: the state of the recipient's GSTIN.
- Goods to an unregistered recipient: the state of the address recorded on the document, s.10(1)(ca),
  or the clinic's state when none is recorded.
- So one document can mix intra-state services with inter-state goods (an out-of-state patient's
  procedure and medicines); each line is split by its own place of supply.

Rounding and totals
- Each tax component is rounded to the paisa on its line. Every total (document, by place and rate,
  exempt, HSN) is the sum of the rounded line values and is never recomputed from summed bases. This
  can differ from ERPNext's per-tax-row rounding by a paisa per component (india-compliance: two ₹7.60
  lines at 12% give CGST 0.91 there, 0.92 here).
- total = Σ line totals; rounded_total = total rounded to the rupee, half up; round_off =
  rounded_total - total is printed as its own line (so |round_off| ≤ 0.50).

Document type
- A clinic not registered for GST charges none: every line is non-GST and the document is a plain bill
  with no GST particulars (gst.md §1.5, registration). A registered clinic's lines are never non-GST.
- Only taxable lines: tax invoice (Rule 46). Only exempt or nil-rated lines: bill of supply (Rule 49).
- Both, to an unregistered recipient: one invoice-cum-bill of supply (Rule 46A).
- Both, to a registered recipient: Rule 46A does not apply, so it is two documents, a tax invoice and a
  bill of supply; document_type raises MixedSupplyToRegistered and split_for_issue makes the two.

Credit notes (Rule 53(1A): always against an original document)
- The same engine on the original document: compute_credit_note(original, returns) credits, per line,
  the quantity returned. Each credited line is the original line priced at (already returned + now
  returned) minus the same line priced at (already returned), with an amount discount shared in
  proportion to quantity. So the parts of a line returned piece by piece add up to the whole line to
  the paisa, and a full return reverses the original exactly. (Pricing each piece afresh could
  over-credit: 3 x 99.99 at 5% less 10.00 has CGST 7.25, but three one-unit returns priced alone would
  credit 2.42 each, 7.26.) A piece's tax can thus differ by a paisa from its own taxable value x rate.
- Credited amounts and quantities are negative, so any aggregate over invoices and credit notes (B2CS
  is reported net of B2C credit notes) is a plain sum; a printed credit note shows absolute values.
  HALF_UP is symmetric about zero, so a credit note's grand total rounds like the invoice's, negated.

GSTR-1 summaries (rate_rows, exempt_rows, hsn_rows: over one document's lines or a month's)
- Taxable lines by place of supply and rate (the rows of Table 7 B2CS, and the items of B2B/B2CL);
  exempt and nil-rated values by intra-/inter-state (Table 8); every line by HSN/SAC, unit and rate,
  exempt and nil-rated at rate 0 (Table 12). Units and quantities are as entered; which table a
  document belongs to and the portal's formats (UQC for services, B2CL threshold) are the export's.
"""

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum

from app.clinics.states import BY_CODE, is_union_territory, validate_gstin

ZERO = Decimal("0.00")
HUNDRED = Decimal(100)
_HSN_SAC = re.compile(r"\d{4}(\d{2}){0,2}")


class TaxError(ValueError):
    """An input the engine cannot price."""


class MixedSupplyToRegistered(TaxError):
    """Taxable and exempt lines for a registered recipient: issue two documents (split_for_issue)."""


class Treatment(StrEnum):
    TAXABLE = "taxable"
    EXEMPT = "exempt"
    NIL_RATED = "nil_rated"
    NON_GST = "non_gst"  # sold by a clinic not registered for GST: it charges none


class DocumentType(StrEnum):
    TAX_INVOICE = "tax_invoice"
    BILL_OF_SUPPLY = "bill_of_supply"
    INVOICE_CUM_BILL_OF_SUPPLY = "invoice_cum_bill_of_supply"
    CREDIT_NOTE = "credit_note"
    BILL = "bill"  # a plain bill of a supplier not registered for GST: no GST particulars at all


def paise(value: Decimal) -> Decimal:
    """Rounded half-up to the paisa."""
    return value.quantize(Decimal("0.01"), ROUND_HALF_UP)


def rupees(value: Decimal) -> Decimal:
    """Rounded half-up to the rupee, kept with two decimals."""
    return value.quantize(Decimal(1), ROUND_HALF_UP).quantize(Decimal("0.01"))


def _decimal(value: Decimal | int | str) -> Decimal:
    if isinstance(value, float | bool):
        raise TypeError(f"Money and quantities are Decimal, never {type(value).__name__}: {value!r}")
    return Decimal(value)


@dataclass(frozen=True)
class Discount:
    """A line discount: an amount off the whole line, or a percentage of it."""

    value: Decimal
    percent: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "value", _decimal(self.value))
        too_big = self.percent and self.value > HUNDRED
        part_paisa = not self.percent and self.value != paise(self.value)
        if self.value < 0 or too_big or part_paisa:
            raise TaxError(f"A discount of {self.value}{'%' if self.percent else ''} is not possible.")

    def of(self, gross: Decimal) -> Decimal:
        """The discount on a line worth `gross`."""
        amount = paise(gross * self.value / HUNDRED) if self.percent else self.value
        if amount > gross:
            raise TaxError(f"A discount of {amount} is more than the line's {gross}.")
        return amount


@dataclass(frozen=True)
class Line:
    """One line as entered: the rate is the one in force on the document date."""

    description: str
    hsn_sac: str
    quantity: Decimal
    unit_price: Decimal
    rate: Decimal = Decimal(0)
    treatment: Treatment = Treatment.TAXABLE
    price_includes_tax: bool = False
    discount: Discount | None = None
    unit: str = "NOS"

    def __post_init__(self) -> None:
        for name in ("quantity", "unit_price", "rate"):
            object.__setattr__(self, name, _decimal(getattr(self, name)))
        _check_line(self)

    @property
    def is_service(self) -> bool:
        """SAC codes (services) all start with 99; HSN codes for goods never do."""
        return self.hsn_sac.startswith("99")


def _check_line(line: Line) -> None:
    if not _HSN_SAC.fullmatch(line.hsn_sac):
        raise TaxError(f"{line.hsn_sac!r} is not a 4, 6 or 8 digit HSN/SAC code.")
    if line.quantity <= 0 or line.unit_price < 0:
        raise TaxError("A line needs a positive quantity and a price of zero or more.")
    taxable = line.treatment is Treatment.TAXABLE
    if taxable and not 0 < line.rate < HUNDRED:
        raise TaxError(f"A taxable line needs a GST rate above 0 and below 100, not {line.rate}.")
    if not taxable and line.rate:
        raise TaxError("An exempt, nil-rated or non-GST line has no GST rate.")


@dataclass(frozen=True)
class Document:
    """What the engine needs to price a document: the clinic's state, the recipient, the lines."""

    supplier_state: str
    lines: tuple[Line, ...]
    recipient_gstin: str | None = None
    recipient_state: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "lines", tuple(self.lines))
        if self.recipient_gstin:
            object.__setattr__(self, "recipient_gstin", validate_gstin(self.recipient_gstin))
        if not self.lines:
            raise TaxError("A document needs at least one line.")
        for code in (self.supplier_state, self.recipient_state):
            if code is not None and code not in BY_CODE:
                raise TaxError(f"{code!r} is not a GST state code.")

    @property
    def registered_recipient(self) -> bool:
        return bool(self.recipient_gstin)


def place_of_supply(document: Document, line: Line) -> str:
    """The state code where `line` is supplied, by the rules in the module docstring."""
    if line.is_service:
        return document.supplier_state
    if document.recipient_gstin:
        return document.recipient_gstin[:2]
    return document.recipient_state or document.supplier_state


@dataclass(frozen=True)
class TaxComponent:
    """One printed tax: "CGST", 2.5, 1.25."""

    name: str
    rate: Decimal
    amount: Decimal


@dataclass(frozen=True)
class LineResult:
    """A priced line. Amounts are negative on a credit note."""

    line: Line
    place_of_supply: str
    inter_state: bool
    state_tax: str
    gross: Decimal
    discount: Decimal
    taxable_value: Decimal
    cgst: Decimal = ZERO
    sgst: Decimal = ZERO
    igst: Decimal = ZERO
    sign: int = field(default=1, repr=False)

    @property
    def rate(self) -> Decimal:
        return self.line.rate

    @property
    def quantity(self) -> Decimal:
        return self.line.quantity * self.sign

    @property
    def total(self) -> Decimal:
        return self.taxable_value + self.cgst + self.sgst + self.igst

    @property
    def components(self) -> tuple[TaxComponent, ...]:
        """The taxes to print on this line, none for an exempt or nil-rated one."""
        if self.line.treatment is not Treatment.TAXABLE:
            return ()
        if self.inter_state:
            return (TaxComponent("IGST", self.rate, self.igst),)
        half = self.rate / 2
        return (TaxComponent("CGST", half, self.cgst), TaxComponent(self.state_tax, half, self.sgst))


def _taxes(value: Decimal, rate: Decimal, inter_state: bool, divisor: Decimal) -> dict[str, Decimal]:
    if inter_state:
        return {"igst": paise(value * rate / divisor)}
    half = paise(value * rate / 2 / divisor)
    return {"cgst": half, "sgst": half}


def price_line(document: Document, line: Line) -> LineResult:
    """One line's taxable value and taxes, positive; see the module docstring for the rules."""
    pos = place_of_supply(document, line)
    gross = paise(line.quantity * line.unit_price)
    discount = line.discount.of(gross) if line.discount else ZERO
    value = gross - discount
    inter = pos != document.supplier_state
    taxes: dict[str, Decimal] = {}
    if line.treatment is Treatment.TAXABLE:
        divisor = HUNDRED + line.rate if line.price_includes_tax else HUNDRED
        taxes = _taxes(value, line.rate, inter, divisor)
    taxable = value - sum(taxes.values()) if line.price_includes_tax else value
    state_tax = "UTGST" if is_union_territory(document.supplier_state) else "SGST"
    return LineResult(line, pos, inter, state_tax, gross, discount, taxable, **taxes)


def document_type(document: Document) -> DocumentType:
    """Which document these lines make; MixedSupplyToRegistered when they must be split."""
    non_gst = {line.treatment is Treatment.NON_GST for line in document.lines}
    if non_gst == {True}:
        return DocumentType.BILL
    if True in non_gst:
        raise TaxError("Non-GST lines (a supplier not registered for GST) cannot share a document with GST lines.")
    kinds = {line.treatment is Treatment.TAXABLE for line in document.lines}
    if kinds == {True}:
        return DocumentType.TAX_INVOICE
    if kinds == {False}:
        return DocumentType.BILL_OF_SUPPLY
    if document.registered_recipient:
        raise MixedSupplyToRegistered(
            "A registered recipient gets a tax invoice and a separate bill of supply (Rule 46A is for "
            "unregistered recipients only)."
        )
    return DocumentType.INVOICE_CUM_BILL_OF_SUPPLY


def split_for_issue(document: Document) -> tuple[Document, ...]:
    """The documents to issue for these lines: one, or for a registered mixed supply the taxable
    lines as a tax invoice and the exempt ones as a bill of supply."""
    try:
        document_type(document)
    except MixedSupplyToRegistered:
        taxable = tuple(line for line in document.lines if line.treatment is Treatment.TAXABLE)
        exempt = tuple(line for line in document.lines if line.treatment is not Treatment.TAXABLE)
        return replace(document, lines=taxable), replace(document, lines=exempt)
    return (document,)


@dataclass(frozen=True)
class DocumentResult:
    """A priced document: its type, lines and totals (all sums of the lines)."""

    document_type: DocumentType
    lines: tuple[LineResult, ...]

    def _sum(self, amount: Callable[[LineResult], Decimal], treatment: Treatment | None = None) -> Decimal:
        return sum(
            (amount(r) for r in self.lines if treatment is None or r.line.treatment is treatment), ZERO
        )

    @property
    def taxable_value(self) -> Decimal:
        return self._sum(lambda r: r.taxable_value, Treatment.TAXABLE)

    @property
    def exempt_value(self) -> Decimal:
        return self._sum(lambda r: r.taxable_value, Treatment.EXEMPT)

    @property
    def nil_rated_value(self) -> Decimal:
        return self._sum(lambda r: r.taxable_value, Treatment.NIL_RATED)

    @property
    def discount(self) -> Decimal:
        return self._sum(lambda r: r.discount)

    @property
    def cgst(self) -> Decimal:
        return self._sum(lambda r: r.cgst)

    @property
    def sgst(self) -> Decimal:
        """SGST or UTGST, whichever the clinic's state levies (state_tax)."""
        return self._sum(lambda r: r.sgst)

    @property
    def igst(self) -> Decimal:
        return self._sum(lambda r: r.igst)

    @property
    def total(self) -> Decimal:
        return self._sum(lambda r: r.total)

    @property
    def rounded_total(self) -> Decimal:
        return rupees(self.total)

    @property
    def round_off(self) -> Decimal:
        return self.rounded_total - self.total

    @property
    def state_tax(self) -> str:
        return self.lines[0].state_tax


def compute(document: Document) -> DocumentResult:
    """Price every line of `document` and decide its type."""
    return DocumentResult(document_type(document), tuple(price_line(document, line) for line in document.lines))


@dataclass(frozen=True)
class Return:
    """Part of a credit note: `quantity` of the original's line number `line` (0-based), after
    `already_returned` of it went back on earlier credit notes."""

    line: int
    quantity: Decimal
    already_returned: Decimal = Decimal(0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "quantity", _decimal(self.quantity))
        object.__setattr__(self, "already_returned", _decimal(self.already_returned))


_AMOUNTS = ("gross", "discount", "taxable_value", "cgst", "sgst", "igst")


def _priced_share(document: Document, line: Line, quantity: Decimal) -> LineResult | None:
    if not quantity:
        return None
    discount = line.discount
    if discount and not discount.percent:
        discount = Discount(paise(discount.value * quantity / line.quantity))
    return price_line(document, replace(line, quantity=quantity, discount=discount))


def price_return(original: Document, part: Return) -> LineResult:
    """One credited line, negative: the line priced up to the end of this return, less up to its start."""
    if not 0 <= part.line < len(original.lines):
        raise TaxError(f"The original document has no line {part.line}.")
    line = original.lines[part.line]
    before, after = part.already_returned, part.already_returned + part.quantity
    if part.quantity <= 0 or before < 0 or after > line.quantity:
        raise TaxError(f"Cannot return {part.quantity} of {line.quantity} after {before} already returned.")
    upto, prior = _priced_share(original, line, after), _priced_share(original, line, before)
    amounts = {name: (getattr(prior, name) if prior else ZERO) - getattr(upto, name) for name in _AMOUNTS}
    discount = line.discount if not line.discount or line.discount.percent else Discount(-amounts["discount"])
    shown = replace(line, quantity=part.quantity, discount=discount)
    return replace(upto, line=shown, sign=-1, **amounts)


def compute_credit_note(original: Document, returns: Iterable[Return]) -> DocumentResult:
    """A credit note against `original` for the given returns (each line at most once)."""
    parts = tuple(returns)
    if not parts or len({part.line for part in parts}) != len(parts):
        raise TaxError("A credit note returns at least one line, each line once.")
    return DocumentResult(DocumentType.CREDIT_NOTE, tuple(price_return(original, part) for part in parts))


def rate_in_force(history: Iterable[tuple[date, Decimal]], on: date) -> Decimal:
    """The rate from (effective_from, rate) pairs in force on `on`: the latest that has started."""
    started = [(since, rate) for since, rate in history if since <= on]
    if not started:
        raise TaxError(f"No GST rate is in force on {on}.")
    return max(started, key=lambda pair: pair[0])[1]
