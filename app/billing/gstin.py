"""GST identifiers: state codes, GSTIN validation, document numbers and financial years.

Pure functions, no database. Sources: shared/reference/gst.md §1.1 (document numbers), §3.3 (state
codes), §3.4 (GSTIN formats) and §3.5 (check digit).

- State codes are the GST portal's: 01-38 and 97 ("Other Territory"). The legacy codes 25 (Daman and
  Diu) and 28 (undivided Andhra Pradesh) are still accepted, since existing GSTINs carry them. 96
  ("Other Countries") is a place of supply for exports only, never a GSTIN's state.
- UTGST replaces SGST in the union territories without a legislature: 04, 25, 26, 31, 35, 38 and 97.
  Delhi (07), Puducherry (34) and Jammu and Kashmir (01) have legislatures and use SGST.
- A GSTIN is 15 characters, upper-cased before checking: a known state code, one of the formats
  below, and the mod-36 check character over the first 14 (the algorithm GSTN publishes; the same
  as india-compliance's `validate_gstin_check_digit`).
- A document number is at most 16 characters of A-Z, 0-9, "-" and "/", starting with a letter or
  digit (Rule 46(b); india-compliance's GST_INVOICE_NUMBER_FORMAT), stored upper-case because GSTR-1
  and the IRP treat numbers case-insensitively.
- The financial year runs 1 April to 31 March and is labelled "2025-26" (short form "25-26").
"""

import re
from dataclasses import dataclass
from datetime import date

STATES: dict[str, str] = {
    "01": "Jammu and Kashmir", "02": "Himachal Pradesh", "03": "Punjab", "04": "Chandigarh",
    "05": "Uttarakhand", "06": "Haryana", "07": "Delhi", "08": "Rajasthan", "09": "Uttar Pradesh",
    "10": "Bihar", "11": "Sikkim", "12": "Arunachal Pradesh", "13": "Nagaland", "14": "Manipur",
    "15": "Mizoram", "16": "Tripura", "17": "Meghalaya", "18": "Assam", "19": "West Bengal",
    "20": "Jharkhand", "21": "Odisha", "22": "Chhattisgarh", "23": "Madhya Pradesh", "24": "Gujarat",
    "25": "Daman and Diu", "26": "Dadra and Nagar Haveli and Daman and Diu", "27": "Maharashtra",
    "28": "Andhra Pradesh (Old)", "29": "Karnataka", "30": "Goa", "31": "Lakshadweep", "32": "Kerala",
    "33": "Tamil Nadu", "34": "Puducherry", "35": "Andaman and Nicobar Islands", "36": "Telangana",
    "37": "Andhra Pradesh", "38": "Ladakh", "97": "Other Territory",
}
UNION_TERRITORIES = frozenset({"04", "25", "26", "31", "35", "38", "97"})

_CHARS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_GSTIN_FORMATS = (
    re.compile(r"[0-9]{2}[A-Z]{5}[0-9]{4}[A-Z][1-9A-Z][Z1-9ABD-J][0-9A-Z]"),  # normal taxpayer
    re.compile(r"[0-9]{2}[A-Z]{4}[0-9]{5}[A-Z][0-9]Z[0-9]"),  # government department
    re.compile(r"[0-9]{2}[A-Z]{4}[A-Z0-9][0-9]{4}[A-Z][1-9A-Z]D[0-9A-Z]"),  # tax deductor (TDS)
    re.compile(r"[0-9]{2}[A-Z]{5}[0-9]{4}[A-Z][1-9A-Z]C[0-9A-Z]"),  # e-commerce operator (TCS)
)
_DOCUMENT_NUMBER = re.compile(r"[A-Z0-9][A-Z0-9/-]{0,15}")


class InvalidGstin(ValueError):
    """A GSTIN that fails the length, format, state-code or check-digit test."""


class InvalidDocumentNumber(ValueError):
    """A document number that Rule 46(b) does not allow."""


def state_label(code: str) -> str:
    """"33-Tamil Nadu": how a state or place of supply is printed."""
    return f"{code}-{STATES[code]}"


def is_union_territory(code: str) -> bool:
    """True where UTGST, not SGST, is levied with CGST."""
    return code in UNION_TERRITORIES


def gstin_check_character(first14: str) -> str:
    """The 15th character of a GSTIN: GSTN's mod-36 check over the first fourteen."""
    total = 0
    for position, char in enumerate(first14.upper()):
        product = _CHARS.index(char) * (2 if position % 2 else 1)
        total += product // 36 + product % 36
    return _CHARS[(36 - total % 36) % 36]


def validate_gstin(value: str) -> str:
    """The GSTIN upper-cased and stripped, or InvalidGstin saying which test it failed."""
    gstin = value.strip().upper()
    if len(gstin) != 15:
        raise InvalidGstin("A GSTIN has 15 characters.")
    if not any(form.fullmatch(gstin) for form in _GSTIN_FORMATS):
        raise InvalidGstin("This is not the format of a GSTIN.")
    if gstin[:2] not in STATES:
        raise InvalidGstin(f"{gstin[:2]} is not a GST state code.")
    if gstin_check_character(gstin[:14]) != gstin[14]:
        raise InvalidGstin("The GSTIN's check character is wrong: please check for a typing error.")
    return gstin


def is_valid_gstin(value: str) -> bool:
    """Whether `value` passes validate_gstin."""
    try:
        validate_gstin(value)
    except InvalidGstin:
        return False
    return True


def gstin_state(gstin: str) -> str:
    """The state code of a valid GSTIN: its first two characters."""
    return validate_gstin(gstin)[:2]


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
