"""Indian states and union territories with their GST state codes, and GSTIN validation.

Codes from the GST portal (reference/gst.md §3.3), including 38 Ladakh and 97 Other Territory,
which python-stdnum rejects. UTGST replaces SGST in union territories without a legislature.
"""

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class State:
    code: str
    name: str
    utgst: bool = False


STATES = [
    State("01", "Jammu and Kashmir"), State("02", "Himachal Pradesh"), State("03", "Punjab"),
    State("04", "Chandigarh", True), State("05", "Uttarakhand"), State("06", "Haryana"),
    State("07", "Delhi"), State("08", "Rajasthan"), State("09", "Uttar Pradesh"), State("10", "Bihar"),
    State("11", "Sikkim"), State("12", "Arunachal Pradesh"), State("13", "Nagaland"),
    State("14", "Manipur"), State("15", "Mizoram"), State("16", "Tripura"), State("17", "Meghalaya"),
    State("18", "Assam"), State("19", "West Bengal"), State("20", "Jharkhand"), State("21", "Odisha"),
    State("22", "Chhattisgarh"), State("23", "Madhya Pradesh"), State("24", "Gujarat"),
    State("26", "Dadra and Nagar Haveli and Daman and Diu", True), State("27", "Maharashtra"),
    State("29", "Karnataka"), State("30", "Goa"), State("31", "Lakshadweep", True),
    State("32", "Kerala"), State("33", "Tamil Nadu"), State("34", "Puducherry"),
    State("35", "Andaman and Nicobar Islands", True), State("36", "Telangana"),
    State("37", "Andhra Pradesh"), State("38", "Ladakh", True), State("97", "Other Territory", True),
]
BY_CODE = {s.code: s for s in STATES}
# Legacy codes still found on GSTINs issued before reorganisation.
LEGACY_CODES = {"25", "28"}

_GSTIN = re.compile(r"^[0-9]{2}[A-Z]{5}[0-9]{4}[A-Z][1-9A-Z][Z1-9ABD-J][0-9A-Z]$")
_CHARS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def gstin_check_char(first14: str) -> str:
    """The Luhn mod-36 check character of a GSTIN's first 14 characters."""
    factor, total = 1, 0
    for char in first14:
        digit = factor * _CHARS.index(char)
        total += digit // 36 + digit % 36
        factor = 2 if factor == 1 else 1
    return _CHARS[(36 - total % 36) % 36]


def gstin_problem(gstin: str) -> str | None:
    """Why a GSTIN is invalid (format, state code, check character), or None."""
    if not _GSTIN.match(gstin):
        return "A GSTIN is 15 characters: state code, PAN, entity number, Z and a check character."
    if gstin[:2] not in BY_CODE and gstin[:2] not in LEGACY_CODES:
        return f"{gstin[:2]} is not a GST state code."
    if gstin_check_char(gstin[:14]) != gstin[14]:
        return "The check character does not match; please re-check the GSTIN."
    return None
