"""The tax engine against worked cases, as tables of inputs and expected paise.

Sources of the cases, cited per row:
- gst.md: shared/reference/gst.md (the law and our conventions: §2.3 room rent, §4.2 rounding, §4.3 MRP).
- IC: resilient-tech/india-compliance, gst_india/data/test_e_invoice.json ("nil_exempted_item",
  "return_invoice") and gst_india/utils/test_e_invoice.py::test_progressive_item_tax_amount; its
  default test line is 1 x 100 at GST 18% (gst_india/utils/tests.py).
- Odoo: odoo/odoo addons/l10n_in/tests/test_hsn_summary.py (_test_l10n_in_hsn_summary_1..5).
Where our convention (tax rounded per line, totals summed) gives a different figure, the row says so.
"""

from datetime import date
from decimal import Decimal as D

import pytest

from app.billing.gstr1 import exempt_rows, hsn_rows, rate_rows
from app.billing.tax import (
    Discount,
    Document,
    DocumentType,
    Line,
    MixedSupplyToRegistered,
    Return,
    TaxError,
    Treatment,
    compute,
    compute_credit_note,
    document_type,
    rate_in_force,
    split_for_issue,
)
from app.billing.words import amount_in_words
from app.clinics.states import InvalidGstin

KA, TN, MH, CH, LA = "29", "33", "27", "04", "38"  # Karnataka, Tamil Nadu, Maharashtra, Chandigarh, Ladakh
GSTIN_MH = "27AAPFU0939F1ZV"  # a registered recipient in Maharashtra (stdnum's doctest GSTIN)
GSTIN_KA = "29AABCR1718E1ZL"  # a registered recipient in Karnataka (IC test records)
EXEMPT, NIL = Treatment.EXEMPT, Treatment.NIL_RATED


def ps(amount: D) -> int:
    """Paise as an int; fails if an amount ever carries a fraction of a paisa."""
    assert amount == amount.quantize(D("0.01")), amount
    return int(amount * 100)


def goods(price, rate="5", qty="1", hsn="3004", **kw) -> Line:
    return Line("Medicine", hsn, qty, price, rate, **kw)


def service(price, rate="18", sac="999722", qty="1") -> Line:
    return Line("Cosmetic procedure", sac, qty, price, rate)


def consultation(price="500", sac="999312") -> Line:
    return Line("Consultation", sac, "1", price, treatment=EXEMPT)


def mrp(price, rate, qty="1", **kw) -> Line:
    return goods(price, rate, qty, price_includes_tax=True, **kw)


def split(result) -> tuple[int, ...]:
    return tuple(ps(getattr(result, name)) for name in ("taxable_value", "cgst", "sgst", "igst", "total"))


# One line: (document, line) -> (taxable value, CGST, SGST/UTGST, IGST, line total) in paise.
LINES = [
    # IC's default test line, intra-state.
    pytest.param({}, goods("100", "18"), (10000, 900, 900, 0, 11800), id="intra-18"),
    pytest.param({"recipient_state": TN}, goods("100", "18"), (10000, 0, 0, 1800, 11800), id="inter-goods-by-address"),
    pytest.param({}, goods("1000"), (100000, 2500, 2500, 0, 105000), id="goods-no-address-intra"),
    pytest.param({"recipient_gstin": GSTIN_MH}, goods("1000"), (100000, 0, 0, 5000, 105000), id="goods-b2b"),
    pytest.param(
        {"recipient_gstin": GSTIN_KA, "recipient_state": TN}, goods("1000"), (100000, 2500, 2500, 0, 105000),
        id="goods-b2b-gstin-beats-address",
    ),
    # Services are supplied where performed (IGST Act s.12(4)): intra whoever and wherever the recipient.
    pytest.param({"recipient_gstin": GSTIN_MH}, service("2000"), (200000, 18000, 18000, 0, 236000), id="service-b2b"),
    pytest.param({"recipient_state": TN}, service("2000"), (200000, 18000, 18000, 0, 236000), id="service-other-state"),
    pytest.param({"supplier_state": CH}, goods("100"), (10000, 250, 250, 0, 10500), id="ut-chandigarh"),
    # Room above 5,000/day, 5% (gst.md §2.3, worked example E20): 150 + 150 a day, two days.
    pytest.param({}, service("6000", "5", sac="999311", qty="2"), (1200000, 30000, 30000, 0, 1260000), id="room-rent"),
    # Discounts come off before tax (Rule 46(k)).
    pytest.param({}, goods("250", "12", "2", discount=Discount("50")), (45000, 2700, 2700, 0, 50400), id="disc-amount"),
    pytest.param(  # 10% of 299.97 = 29.997 -> 30.00; 269.97 x 2.5% = 6.74925 -> 6.75
        {}, goods("99.99", "5", "3", discount=Discount("10", percent=True)), (26997, 675, 675, 0, 28347),
        id="disc-percent",
    ),
    # Odoo summary 5: 100 less 10% -> 90.
    pytest.param({}, goods("100", "18", discount=Discount("10", True)), (9000, 810, 810, 0, 10620), id="disc-odoo"),
    # MRP-inclusive, Rule 35: tax = V x r / (100 + R) per component; taxable value is the remainder.
    pytest.param({}, mrp("250", "12"), (22322, 1339, 1339, 0, 25000), id="mrp-gst.md-4.3"),
    pytest.param({"recipient_state": TN}, mrp("250", "12"), (22321, 0, 0, 2679, 25000), id="mrp-inter"),
    pytest.param({}, mrp("118", "18", "3"), (30000, 2700, 2700, 0, 35400), id="mrp-qty-3"),
    pytest.param({}, mrp("105", "5", "2", discount=Discount("10", True)), (18000, 450, 450, 0, 18900), id="mrp-disc"),
    pytest.param({}, mrp("33.50", "5"), (3190, 80, 80, 0, 3350), id="mrp-odd"),
    pytest.param({"supplier_state": LA}, mrp("112", "12"), (10000, 600, 600, 0, 11200), id="mrp-ut-ladakh"),
    # Half a paisa rounds up (gst.md §4.2: float round() gives 0.49 for 5.50 x 9%).
    pytest.param({}, goods("5.50", "18"), (550, 50, 50, 0, 650), id="half-paisa-intra"),
    pytest.param({"recipient_state": TN}, goods("10.10"), (1010, 0, 0, 51, 1061), id="half-paisa-igst"),
    pytest.param({}, goods("10.10"), (1010, 25, 25, 0, 1060), id="quarter-paisa-intra"),
    # gst.md §4.2: CGST+SGST may differ from IGST on the same value; expected, not "fixed".
    pytest.param({}, goods("62.51", "18"), (6251, 563, 563, 0, 7377), id="62.51-intra"),
    pytest.param({"recipient_state": TN}, goods("62.51", "18"), (6251, 0, 0, 1125, 7376), id="62.51-inter"),
    # Odoo summary 2 (without its cess): 15.80 at 18%.
    pytest.param({}, goods("15.80", "18"), (1580, 142, 142, 0, 1864), id="odoo-15.80-intra"),
    pytest.param({"recipient_state": TN}, goods("15.80", "18"), (1580, 0, 0, 284, 1864), id="odoo-15.80-inter"),
    pytest.param({}, goods("40.10", "5", "2.5"), (10025, 251, 251, 0, 10527), id="fractional-qty"),
    pytest.param({}, consultation(), (50000, 0, 0, 0, 50000), id="exempt"),
    pytest.param({}, Line("Free follow-up", "999312", "1", "0", treatment=EXEMPT), (0, 0, 0, 0, 0), id="free"),
    pytest.param({"recipient_state": TN}, goods("200", "0", treatment=NIL), (20000, 0, 0, 0, 20000), id="nil"),
]


@pytest.mark.parametrize(("document", "line", "expected"), LINES)
def test_line(document, line, expected):
    result = compute(Document(**{"supplier_state": KA, **document}, lines=(line,)))
    assert split(result.lines[0]) == expected
    assert split(result)[1:] == expected[1:]  # the document's taxable value counts taxable lines only


# Whole documents: lines -> (type, taxable, exempt, nil, CGST, SGST, IGST, total, rounded total, round-off).
ODOO_1 = [goods(p, r, q, hsn="1234") for r in ("5", "18") for q, p in (("2", "100"), ("1", "600"), ("5", "300"))]
TI, BOS, ICBS = DocumentType.TAX_INVOICE, DocumentType.BILL_OF_SUPPLY, DocumentType.INVOICE_CUM_BILL_OF_SUPPLY
DOCUMENTS = [
    pytest.param({}, ODOO_1, (TI, 460000, 0, 0, 26450, 26450, 0, 512900, 512900, 0), id="odoo-1-multi-rate"),
    pytest.param({"recipient_state": TN}, ODOO_1, (TI, 460000, 0, 0, 0, 0, 52900, 512900, 512900, 0), id="odoo-5-igst"),
    pytest.param(
        {}, [consultation(), consultation("350", "999316")], (BOS, 0, 85000, 0, 0, 0, 0, 85000, 85000, 0),
        id="exempt-only",
    ),
    # 91.00 x 2.5% = 2.275 -> 2.28 each; 595.56 rounds up to 596.
    pytest.param(
        {}, [consultation(), goods("45.50", "5", "2")], (ICBS, 9100, 50000, 0, 228, 228, 0, 59556, 59600, 44),
        id="mixed-round-off-up",
    ),
    # IC "nil_exempted_item": nil 100 + 10 at 12% = 111.20 -> 111, round-off -0.20 (IC's buyer is
    # registered; ours is not, since a registered buyer gets two documents).
    pytest.param(
        {}, [goods("100", "0", treatment=NIL), goods("10", "12")], (ICBS, 1000, 0, 10000, 60, 60, 0, 11120, 11100, -20),
        id="ic-nil-exempted-round-off-down",
    ),
    pytest.param({}, [Line("Package", "999312", "1", "1180.50", treatment=EXEMPT)],
                 (BOS, 0, 118050, 0, 0, 0, 0, 118050, 118100, 50), id="round-off-half-rupee-up"),
    # IC test_progressive_item_tax_amount / "return_invoice": two 7.60 lines at 12%. IC rounds per tax
    # row: CGST 0.46 + 0.45 = 0.91, total 17.02. Per line (ours): 0.46 + 0.46 = 0.92, total 17.04.
    pytest.param(
        {}, [goods("7.60", "12"), goods("7.60", "12")], (TI, 1520, 0, 0, 92, 92, 0, 1704, 1700, -4), id="ic-7.60"
    ),
    # An out-of-state patient: the procedure is intra-state (performed here), the medicine inter-state.
    pytest.param(
        {"recipient_state": TN}, [service("1000"), goods("200")],
        (TI, 120000, 0, 0, 9000, 9000, 1000, 139000, 139000, 0),
        id="intra-service-inter-goods",
    ),
    pytest.param(
        {"supplier_state": CH}, [consultation("400"), goods("100", "12")],
        (ICBS, 10000, 40000, 0, 600, 600, 0, 51200, 51200, 0),
        id="ut-mixed",
    ),
]


def totals(result) -> tuple:
    names = ("taxable_value", "exempt_value", "nil_rated_value", "cgst", "sgst", "igst", "total", "rounded_total")
    return (result.document_type, *(ps(getattr(result, n)) for n in names), ps(result.round_off))


@pytest.mark.parametrize(("document", "lines", "expected"), DOCUMENTS)
def test_document(document, lines, expected):
    result = compute(Document(**{"supplier_state": KA, **document}, lines=lines))
    assert totals(result) == expected
    assert result.total == sum(line.total for line in result.lines)
    assert abs(result.round_off) <= D("0.50")


@pytest.mark.parametrize(
    ("supplier", "label"),
    [("29", "SGST"), ("07", "SGST"), ("34", "SGST"), ("01", "SGST"), ("04", "UTGST"), ("26", "UTGST"),
     ("31", "UTGST"), ("35", "UTGST"), ("38", "UTGST"), ("97", "UTGST")],
)
def test_state_tax_is_utgst_in_union_territories_without_legislature(supplier, label):
    result = compute(Document(supplier, (goods("100"),)))
    assert result.state_tax == label
    assert [(c.name, c.rate, ps(c.amount)) for c in result.lines[0].components] == [
        ("CGST", D("2.5"), 250), (label, D("2.5"), 250),
    ]


def test_components_printed_per_line():
    result = compute(Document(KA, (goods("100", "12"), consultation()), recipient_state=TN))
    assert [(c.name, c.rate, ps(c.amount)) for c in result.lines[0].components] == [("IGST", D("12"), 1200)]
    assert result.lines[1].components == ()


@pytest.mark.parametrize("rate", ["0.25", "3", "5", "12", "18", "28", "40"])
@pytest.mark.parametrize("state", [{}, {"recipient_state": TN}])
def test_mrp_line_total_is_always_the_mrp(rate, state):
    for cents in range(1, 100_000, 97):
        for qty in ("1", "2", "3"):
            price = D(cents) / 100
            line = compute(Document(KA, (mrp(price, rate, qty),), **state)).lines[0]
            assert line.total == price * D(qty)
            # A recomputation from the taxable value is off by at most a paisa per component.
            assert abs(line.taxable_value * D(rate) / 100 - (line.cgst + line.sgst + line.igst)) <= D("0.02")


# Document type: which lines, which recipient -> which document (Rules 46, 49, 46A).
@pytest.mark.parametrize(
    ("lines", "gstin", "expected"),
    [
        ([goods("10")], None, TI),
        ([goods("10")], GSTIN_MH, TI),
        ([consultation()], None, BOS),
        ([consultation()], GSTIN_MH, BOS),
        ([goods("10", "0", treatment=NIL)], None, BOS),
        ([consultation(), goods("10")], None, ICBS),
        ([consultation(), goods("10")], GSTIN_MH, MixedSupplyToRegistered),
    ],
)
def test_document_type(lines, gstin, expected):
    document = Document(KA, lines, recipient_gstin=gstin)
    if expected is MixedSupplyToRegistered:
        with pytest.raises(MixedSupplyToRegistered):
            document_type(document)
    else:
        assert document_type(document) == expected


def test_registered_mixed_supply_is_issued_as_two_documents():
    lines = (consultation(), goods("1000"), consultation("350", "999316"))
    documents = split_for_issue(Document(KA, lines, recipient_gstin=GSTIN_MH))
    assert [(document_type(d), len(d.lines)) for d in documents] == [(TI, 1), (BOS, 2)]
    assert [ps(compute(d).total) for d in documents] == [105000, 85000]
    assert split_for_issue(Document(KA, lines)) == (Document(KA, lines),)


# Credit notes: returns against the original -> credited (taxable, CGST, SGST, IGST, total), negative.
ORIGINAL = Document(KA, (consultation(), goods("99.99", "5", "3", discount=Discount("10")), mrp("250", "12")))
CREDITS = [
    pytest.param([Return(1, "3")], [(-28997, -725, -725, 0, -30447)], id="whole-line"),
    # 1 of 3: discount share 3.33; 96.66 x 2.5% = 2.4165 -> 2.42.
    pytest.param([Return(1, "1")], [(-9666, -242, -242, 0, -10150)], id="one-of-three"),
    # The second unit is priced as (2 units) - (1 unit): CGST 4.83 - 2.42 = 2.41, not 2.42 afresh.
    pytest.param([Return(1, "1", "1")], [(-9665, -241, -241, 0, -10147)], id="second-of-three"),
    pytest.param([Return(1, "1", "2")], [(-9666, -242, -242, 0, -10150)], id="third-of-three"),
    pytest.param([Return(2, "1")], [(-22322, -1339, -1339, 0, -25000)], id="mrp-line"),
    pytest.param([Return(0, "1")], [(-50000, 0, 0, 0, -50000)], id="exempt-line"),
]


@pytest.mark.parametrize(("returns", "expected"), CREDITS)
def test_credit_note(returns, expected):
    result = compute_credit_note(ORIGINAL, returns)
    assert result.document_type == DocumentType.CREDIT_NOTE
    assert [split(line) for line in result.lines] == expected


@pytest.mark.parametrize("pieces", [["3"], ["1", "2"], ["2", "1"], ["1", "1", "1"]])
def test_returns_in_pieces_add_up_to_the_line(pieces):
    full = compute(ORIGINAL).lines[1]
    done, credited = D(0), []
    for piece in pieces:
        credited.append(compute_credit_note(ORIGINAL, [Return(1, piece, done)]).lines[0])
        done += D(piece)
    for name in ("gross", "discount", "taxable_value", "cgst", "sgst", "igst", "quantity"):
        assert sum(getattr(c, name) for c in credited) == -getattr(full, name), name


@pytest.mark.parametrize(
    "document",
    [
        ORIGINAL,
        Document(KA, (consultation(), goods("45.50", "5", "2"))),
        Document(KA, (service("1000"), goods("200"), mrp("33.50", "5")), recipient_state=TN),
        Document(CH, (goods("7.60", "12"), goods("7.60", "12"))),
    ],
)
def test_full_cancellation_reverses_the_original_exactly(document):
    original = compute(document)
    credit = compute_credit_note(document, [Return(i, line.quantity) for i, line in enumerate(document.lines)])
    assert totals(credit)[1:] == tuple(-v for v in totals(original)[1:])
    assert amount_in_words(abs(credit.rounded_total)) == amount_in_words(original.rounded_total)


def test_credit_note_round_off_mirrors_the_invoice():
    document = Document(KA, (Line("Package", "999312", "1", "1180.50", treatment=EXEMPT),))
    credit = compute_credit_note(document, [Return(0, "1")])
    assert (ps(credit.total), ps(credit.rounded_total), ps(credit.round_off)) == (-118050, -118100, -50)


@pytest.mark.parametrize(
    "returns",
    [
        [Return(1, "4")], [Return(1, "2", "2")], [Return(1, "0")], [Return(1, "-1")], [],
        [Return(0, "1"), Return(0, "1")], [Return(3, "1")], [Return(-1, "1")],
    ],
)
def test_impossible_returns_are_refused(returns):
    with pytest.raises(TaxError):
        compute_credit_note(ORIGINAL, returns)


# GSTR-1 summaries, from the rounded line values.
@pytest.mark.parametrize(
    ("document", "expected"),
    [
        # Odoo summary 1: per HSN and rate, quantity, taxable, IGST, CGST, SGST.
        (Document(KA, ODOO_1), [("1234", D(5), 8, 230000, 0, 5750, 5750), ("1234", D(18), 8, 230000, 0, 20700, 20700)]),
        # Odoo summary 3: two HSN codes at 18%.
        (
            Document(KA, [goods(p, "18", q, hsn=h) for h in ("1234", "4321") for q, p in (("1", "100"), ("2", "50"))]),
            [("1234", D(18), 3, 20000, 0, 1800, 1800), ("4321", D(18), 3, 20000, 0, 1800, 1800)],
        ),
        # Odoo summary 4: nil-rated and exempt under one HSN share the rate-0 row.
        (
            Document(KA, [goods("350", "0", hsn="1234", treatment=t) for t in (NIL, EXEMPT)]),
            [("1234", D(0), 2, 70000, 0, 0, 0)],
        ),
        # Odoo summary 4, third case: IGST 18% and exempt under one HSN.
        (
            Document(
                KA,
                [goods("350", "18", hsn="1234"), goods("350", "0", hsn="1234", treatment=EXEMPT)],
                recipient_state=TN,
            ),
            [("1234", D(0), 1, 35000, 0, 0, 0), ("1234", D(18), 1, 35000, 6300, 0, 0)],
        ),
    ],
)
def test_hsn_rows(document, expected):
    rows = hsn_rows(compute(document).lines)
    got = [(r.hsn_sac, r.rate, int(r.quantity), ps(r.taxable_value), ps(r.igst), ps(r.cgst), ps(r.sgst)) for r in rows]
    assert got == expected


def test_month_summaries_net_credit_notes_by_place_and_rate():
    walk_in = Document(KA, (consultation(), goods("200", "5"), goods("100", "18")))
    visitor_lines = (consultation("350", "999316"), goods("400", "5"), goods("50", "0", treatment=NIL))
    visitor = Document(KA, visitor_lines, recipient_state=TN)
    lines = [
        *compute(walk_in).lines,
        *compute(visitor).lines,
        *compute_credit_note(walk_in, [Return(1, "1")]).lines,
    ]
    assert [(r.place_of_supply, r.rate, r.inter_state, ps(r.taxable_value), ps(r.igst), ps(r.cgst), ps(r.sgst))
            for r in rate_rows(lines)] == [
        (KA, D(5), False, 0, 0, 0, 0),  # sold and returned in the month: nets to nothing
        (KA, D(18), False, 10000, 0, 900, 900),
        (TN, D(5), True, 40000, 2000, 0, 0),
    ]
    assert [(r.inter_state, ps(r.nil_rated), ps(r.exempt)) for r in exempt_rows(lines)] == [
        (False, 0, 85000),
        (True, 5000, 0),
    ]


@pytest.mark.parametrize(
    ("day", "expected"),
    [(date(2025, 9, 21), D(12)), (date(2025, 9, 22), D(5)), (date(2026, 1, 1), D(5)), (date(2017, 7, 1), D(12))],
)
def test_rate_in_force_on_the_document_date(day, expected):
    # Most medicines: 12% until GST 2.0 took effect on 22 Sep 2025, 5% after (gst.md §2.5).
    history = [(date(2025, 9, 22), D(5)), (date(2017, 7, 1), D(12))]
    assert rate_in_force(history, day) == expected


def test_no_rate_before_the_first_one():
    with pytest.raises(TaxError):
        rate_in_force([(date(2017, 7, 1), D(12))], date(2017, 6, 30))


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: goods(100.0), id="float-price"),
        pytest.param(lambda: goods("10", qty=1.5), id="float-quantity"),
        pytest.param(lambda: goods("10", hsn="30"), id="short-hsn"),
        pytest.param(lambda: goods("10", hsn="30049A"), id="letters-in-hsn"),
        pytest.param(lambda: goods("10", hsn="30049"), id="five-digit-hsn"),
        pytest.param(lambda: goods("10", "0"), id="taxable-without-rate"),
        pytest.param(lambda: goods("10", "100"), id="rate-100"),
        pytest.param(lambda: goods("10", "5", treatment=EXEMPT), id="exempt-with-rate"),
        pytest.param(lambda: goods("10", qty="0"), id="zero-quantity"),
        pytest.param(lambda: goods("-10"), id="negative-price"),
        pytest.param(lambda: Discount("101", percent=True), id="discount-over-100-percent"),
        pytest.param(lambda: Discount("-1"), id="negative-discount"),
        pytest.param(lambda: Discount("0.005"), id="discount-part-paisa"),
        pytest.param(lambda: compute(Document(KA, (goods("10", discount=Discount("10.01")),))), id="disc-over-gross"),
        pytest.param(lambda: Document("39", (goods("10"),)), id="unknown-supplier-state"),
        pytest.param(lambda: Document(KA, (goods("10"),), recipient_state="96"), id="export-state"),
        pytest.param(lambda: Document(KA, ()), id="no-lines"),
        pytest.param(lambda: Document(KA, (goods("10"),), recipient_gstin="27AAPFU0939F1ZO"), id="bad-gstin"),
    ],
)
def test_invalid_input_is_refused(make):
    with pytest.raises((TaxError, TypeError, InvalidGstin)):
        make()
