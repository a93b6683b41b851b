"""GST document numbers and financial years.

Pure functions, no database. Source: shared/reference/gst.md §1.1. State codes and the GSTIN validator
are app/clinics/states.py's (one table, one validator, for every form that takes a GSTIN).

- A document number is at most 16 characters of A-Z, 0-9, "-" and "/", starting with a letter or
  digit (Rule 46(b); india-compliance's GST_INVOICE_NUMBER_FORMAT), stored upper-case because GSTR-1
  and the IRP treat numbers case-insensitively.
- The financial year runs 1 April to 31 March and is labelled "2025-26" (short form "25-26").
"""

import re
from dataclasses import dataclass
from datetime import date

_DOCUMENT_NUMBER = re.compile(r"[A-Z0-9][A-Z0-9/-]{0,15}")


class InvalidDocumentNumber(ValueError):
    """A document number that Rule 46(b) does not allow."""


def validate_document_number(value: str) -> str:
    """The number upper-cased, or InvalidDocumentNumber: ≤ 16 of A-Z 0-9 - /, alphanumeric first."""
    number = value.strip().upper()
    if len(number) > 16:
        raise InvalidDocumentNumber("A document number has at most 16 characters.")
    if not _DOCUMENT_NUMBER.fullmatch(number):
        raise InvalidDocumentNumber(
            "A document number starts with a letter or digit and has only letters, digits, - and /."
        )
    return number


@dataclass(frozen=True)
class FinancialYear:
    """An Indian financial year, 1 April to 31 March."""

    start: date
    end: date

    @property
    def label(self) -> str:
        """"2025-26"."""
        return f"{self.start.year}-{self.end.year % 100:02d}"

    @property
    def short_label(self) -> str:
        """"25-26", short enough for a 16-character document number."""
        return f"{self.start.year % 100:02d}-{self.end.year % 100:02d}"


def financial_year(day: date) -> FinancialYear:
    """The financial year `day` falls in."""
    first = day.year if day.month >= 4 else day.year - 1
    return FinancialYear(date(first, 4, 1), date(first + 1, 3, 31))
