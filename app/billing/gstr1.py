"""GSTR-1 summaries: sums of priced lines (of one document or of a month's documents, credit notes
included as negatives). Exports choose the table (B2B, B2CL, B2CS) and the portal's formats."""

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal

from app.billing.tax import ZERO, LineResult, Treatment


@dataclass(frozen=True)
class RateRow:
    """Taxable supplies for one place of supply and rate (GSTR-1 Table 7, B2CS; and B2B/B2CL items)."""

    place_of_supply: str
    rate: Decimal
    inter_state: bool
    taxable_value: Decimal
    igst: Decimal
    cgst: Decimal
    sgst: Decimal


@dataclass(frozen=True)
class ExemptRow:
    """Nil-rated and exempt supplies, intra- or inter-state (GSTR-1 Table 8)."""

    inter_state: bool
    nil_rated: Decimal
    exempt: Decimal


@dataclass(frozen=True)
class HsnRow:
    """One HSN/SAC, unit and rate (GSTR-1 Table 12); exempt and nil-rated lines at rate 0."""

    hsn_sac: str
    unit: str
    rate: Decimal
    quantity: Decimal
    taxable_value: Decimal
    igst: Decimal
    cgst: Decimal
    sgst: Decimal


def _grouped(lines: Iterable[LineResult], key: Callable[[LineResult], tuple]) -> dict[tuple, list[LineResult]]:
    groups: dict[tuple, list[LineResult]] = {}
    for result in lines:
        groups.setdefault(key(result), []).append(result)
    return dict(sorted(groups.items()))


def _total(lines: list[LineResult], name: str) -> Decimal:
    return sum((getattr(r, name) for r in lines), ZERO)


def rate_rows(lines: Iterable[LineResult]) -> list[RateRow]:
    """Taxable lines summed by place of supply and rate."""
    taxable = (r for r in lines if r.line.treatment is Treatment.TAXABLE)
    groups = _grouped(taxable, lambda r: (r.place_of_supply, r.rate, r.inter_state))
    return [
        RateRow(pos, rate, inter, *(_total(rs, n) for n in ("taxable_value", "igst", "cgst", "sgst")))
        for (pos, rate, inter), rs in groups.items()
    ]


def exempt_rows(lines: Iterable[LineResult]) -> list[ExemptRow]:
    """Exempt and nil-rated values summed by intra-/inter-state supply."""
    untaxed = (r for r in lines if r.line.treatment is not Treatment.TAXABLE)
    rows = []
    for (inter,), rs in _grouped(untaxed, lambda r: (r.inter_state,)).items():
        nil = _total([r for r in rs if r.line.treatment is Treatment.NIL_RATED], "taxable_value")
        rows.append(ExemptRow(inter, nil, _total(rs, "taxable_value") - nil))
    return rows


def hsn_rows(lines: Iterable[LineResult]) -> list[HsnRow]:
    """Every line summed by HSN/SAC, unit and rate."""
    groups = _grouped(lines, lambda r: (r.line.hsn_sac, r.line.unit, r.rate))
    return [
        HsnRow(hsn, unit, rate, *(_total(rs, n) for n in ("quantity", "taxable_value", "igst", "cgst", "sgst")))
        for (hsn, unit, rate), rs in groups.items()
    ]
