"""Document-number and financial-year checks (gst.md §1.1); GSTINs are tests/clinics/test_gstin.py's."""

from datetime import date

import pytest

from app.billing.numbers import InvalidDocumentNumber, financial_year, validate_document_number


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
