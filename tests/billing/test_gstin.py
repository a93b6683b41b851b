"""GSTIN, document-number and financial-year checks (gst.md §1.1, §3.3-3.5).

Check characters of the made-up GSTINs below were computed with GSTN's mod-36 algorithm and, for
27AAPFU0939F1ZV, 38AAPFU0939F1ZS and 97AAPFU0939F1ZO, match the values worked out in gst.md §3.5-3.6.
"""

from datetime import date

import pytest

from app.billing.gstin import (
    InvalidDocumentNumber,
    InvalidGstin,
    financial_year,
    gstin_check_character,
    gstin_state,
    is_union_territory,
    is_valid_gstin,
    state_label,
    validate_document_number,
    validate_gstin,
)

VALID = [
    "27AAPFU0939F1ZV",  # python-stdnum's doctest
    "24AAQCA8719H1ZC",  # india-compliance's test company
    "24AANFA2641L1ZF", "29AABCR1718E1ZL", "24AABCR6898M1ZN", "33AAAAR6720M1ZG", "05AAACG2140A1ZL",
    "24AANCA4892J1Z8", "29AAHCM7727Q1ZI",  # india-compliance test_records.json
    "27AAACR5055K1Z7",  # gst.md §3.6
    "38AAPFU0939F1ZS",  # Ladakh, rejected by python-stdnum 2.2
    "97AAPFU0939F1ZO",  # Other Territory, rejected by python-stdnum 2.2
    "04AABCU9603R1ZV",  # Chandigarh
    "35AABCU9603R1ZQ",  # Andaman and Nicobar
    "01AABCU9603R1Z1",  # Jammu and Kashmir
    "29AAPFU0939F2ZQ",  # second registration of a PAN in a state
    "07DELK12345A1DV",  # tax deductor (TDS)
    "27AAACF1234B1CO",  # e-commerce operator (TCS)
    " 27aapfu0939f1zv ",  # typed in lower case with spaces
    # python-stdnum's InvalidComponent doctest, because it insists on Z as the 14th character; GSTN's
    # format (gst.md §3.4, india-compliance) allows A there, and A is also the right check character.
    "27AAPFU0939F1AA",
]


@pytest.mark.parametrize("gstin", VALID)
def test_valid_gstin(gstin):
    assert validate_gstin(gstin) == gstin.strip().upper()
    assert is_valid_gstin(gstin)


@pytest.mark.parametrize(
    ("gstin", "reason"),
    [
        ("27AAPFU0939F1ZO", "check character"),  # python-stdnum's InvalidChecksum doctest
        ("27AAACR5055K1Z8", "check character"),  # gst.md §3.6
        ("27AAPFU0939F1ZW", "check character"),
        ("27AAPFU9039F1ZV", "check character"),  # two digits transposed
        ("39AAPFU0939F1ZQ", "state code"),  # check character right, no such state
        ("96AAPFU0939F1ZQ", "state code"),  # Other Countries: a place of supply, never a GSTIN
        ("00AAPFU0939F1ZB", "state code"),
        ("27AAPFU0939F0ZV", "format"),  # entity number 0
        ("27AAPF00939F1ZV", "format"),  # digit inside the PAN's letters
        ("27AAPFU0939F1Z", "15 characters"),
        ("27AAPFU0939F1ZVX", "15 characters"),
        ("", "15 characters"),
        ("27AAPFU0939F1Z-", "format"),
    ],
)
def test_invalid_gstin(gstin, reason):
    with pytest.raises(InvalidGstin, match=reason):
        validate_gstin(gstin)
    assert not is_valid_gstin(gstin)


def test_check_character_and_state():
    assert gstin_check_character("27AAPFU0939F1Z") == "V"
    assert gstin_state("38AAPFU0939F1ZS") == "38"
    assert state_label("33") == "33-Tamil Nadu"
    assert state_label("38") == "38-Ladakh"
    assert state_label("97") == "97-Other Territory"


@pytest.mark.parametrize(
    ("code", "ut"),
    [("04", True), ("26", True), ("31", True), ("35", True), ("38", True), ("97", True),
     ("07", False), ("34", False), ("01", False), ("29", False)],
)
def test_union_territories_without_legislature(code, ut):
    assert is_union_territory(code) is ut


@pytest.mark.parametrize(
    ("number", "stored"),
    [
        # india-compliance test_sales_invoice.py valid numbers
        ("012345678901236", "012345678901236"),
        ("SI/2020/0001", "SI/2020/0001"),
        ("SI/2020-0001", "SI/2020-0001"),
        ("2020-PI-0001", "2020-PI-0001"),
        ("PI2020-0001", "PI2020-0001"),
        # ours
        ("INV/25-26/000123", "INV/25-26/000123"),  # exactly 16
        ("cn/25-26/7", "CN/25-26/7"),  # stored upper-case
        ("A", "A"),
    ],
)
def test_valid_document_number(number, stored):
    assert validate_document_number(number) == stored


@pytest.mark.parametrize(
    "number",
    [
        # india-compliance test_sales_invoice.py invalid numbers
        "SI$1231", "012345678901234567", "SI 2020 05", "SI.2020.0001", "PI2021 - 001",
        # ours
        "INV/25-26/0001234",  # 17 characters
        "/INV/1", "-INV-1",  # must start with a letter or digit
        "INV_1", "INV#1", "\u0406NV/1",  # underscore, hash, a Cyrillic I
        "",
    ],
)
def test_invalid_document_number(number):
    with pytest.raises(InvalidDocumentNumber):
        validate_document_number(number)


@pytest.mark.parametrize(
    ("day", "label", "short", "start", "end"),
    [
        (date(2025, 4, 1), "2025-26", "25-26", date(2025, 4, 1), date(2026, 3, 31)),
        (date(2026, 3, 31), "2025-26", "25-26", date(2025, 4, 1), date(2026, 3, 31)),
        (date(2025, 3, 31), "2024-25", "24-25", date(2024, 4, 1), date(2025, 3, 31)),
        (date(2025, 12, 31), "2025-26", "25-26", date(2025, 4, 1), date(2026, 3, 31)),
        (date(2026, 1, 1), "2025-26", "25-26", date(2025, 4, 1), date(2026, 3, 31)),
        (date(1999, 6, 1), "1999-00", "99-00", date(1999, 4, 1), date(2000, 3, 31)),
    ],
)
def test_financial_year(day, label, short, start, end):
    year = financial_year(day)
    assert (year.label, year.short_label, year.start, year.end) == (label, short, start, end)
