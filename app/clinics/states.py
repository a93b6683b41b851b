"""Indian states and union territories with their GST state codes, and the one GSTIN validator.

Sources: shared/reference/gst.md §3.3 (state codes), §3.4 (GSTIN formats) and §3.5 (check character).

- State codes are the GST portal's: 01-38 and 97 ("Other Territory"). The legacy codes 25 (Daman and
  Diu) and 28 (undivided Andhra Pradesh) are no longer offered for a new registration, but GSTINs
  carrying them are still accepted. 96 ("Other Countries") is a place of supply for exports only,
  never a GSTIN's state.
- UTGST replaces SGST in the union territories without a legislature: 04, 25, 26, 31, 35, 38 and 97.
  Delhi (07), Puducherry (34) and Jammu and Kashmir (01) have legislatures and use SGST.
- A GSTIN is 15 characters, upper-cased before checking: a known state code, one of GSTN's formats
  (normal taxpayer, government department, tax deductor, e-commerce operator), and GSTN's mod-36
  check character over the first 14 (the same as india-compliance's `validate_gstin_check_digit`).

python-stdnum's `stdnum.in_.gstin` is not used: its state table stops at 37 (so Ladakh's 38 and
Other Territory's 97 are refused) and it insists on "Z" as the 14th character (so TDS and TCS
registrations are refused), gst.md §3.6.
"""

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class State:
    code: str
    name: str
    holiday_subdivision: str | None  # None: the `holidays` package has only national holidays for it
    utgst: bool = False  # a union territory without a legislature: UTGST, not SGST
    legacy: bool = False  # found on existing GSTINs, never offered for a new registration


_ALL = [  # code, name, the ISO 3166-2:IN subdivision the `holidays` package knows it by
    State("01", "Jammu and Kashmir", "JK"),
    State("02", "Himachal Pradesh", "HP"),
    State("03", "Punjab", "PB"),
    State("04", "Chandigarh", "CH", utgst=True),
    State("05", "Uttarakhand", "UK"),
    State("06", "Haryana", "HR"),
    State("07", "Delhi", "DL"),
    State("08", "Rajasthan", "RJ"),
    State("09", "Uttar Pradesh", "UP"),
    State("10", "Bihar", "BR"),
    State("11", "Sikkim", "SK"),
    State("12", "Arunachal Pradesh", "AR"),
    State("13", "Nagaland", "NL"),
    State("14", "Manipur", "MN"),
    State("15", "Mizoram", "MZ"),
    State("16", "Tripura", "TR"),
    State("17", "Meghalaya", "ML"),
    State("18", "Assam", "AS"),
    State("19", "West Bengal", "WB"),
    State("20", "Jharkhand", "JH"),
    State("21", "Odisha", "OD"),
    State("22", "Chhattisgarh", "CG"),
    State("23", "Madhya Pradesh", "MP"),
    State("24", "Gujarat", "GJ"),
    State("25", "Daman and Diu", None, utgst=True, legacy=True),
    State("26", "Dadra and Nagar Haveli and Daman and Diu", "DH", utgst=True),
    State("27", "Maharashtra", "MH"),
    State("28", "Andhra Pradesh (Old)", None, legacy=True),
    State("29", "Karnataka", "KA"),
    State("30", "Goa", "GA"),
    State("31", "Lakshadweep", "LD", utgst=True),
    State("32", "Kerala", "KL"),
    State("33", "Tamil Nadu", "TN"),
    State("34", "Puducherry", "PY"),
    State("35", "Andaman and Nicobar Islands", "AN", utgst=True),
    State("36", "Telangana", "TS"),
    State("37", "Andhra Pradesh", "AP"),
    State("38", "Ladakh", "LA", utgst=True),
    State("97", "Other Territory", None, utgst=True),
]
BY_CODE = {s.code: s for s in _ALL}  # every code a GSTIN or a place of supply may carry
STATES = [s for s in _ALL if not s.legacy]  # the states a clinic or a patient can be in today

_CHARS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_GSTIN_FORMATS = (  # gst.md §3.4, from the GST developer API docs via india-compliance
    re.compile(r"[0-9]{2}[A-Z]{5}[0-9]{4}[A-Z][1-9A-Z][Z1-9ABD-J][0-9A-Z]"),  # normal taxpayer
    re.compile(r"[0-9]{2}[A-Z]{4}[0-9]{5}[A-Z][0-9]Z[0-9]"),  # government department
    re.compile(r"[0-9]{2}[A-Z]{4}[A-Z0-9][0-9]{4}[A-Z][1-9A-Z]D[0-9A-Z]"),  # tax deductor (TDS)
    re.compile(r"[0-9]{2}[A-Z]{5}[0-9]{4}[A-Z][1-9A-Z]C[0-9A-Z]"),  # e-commerce operator (TCS)
)


class InvalidGstin(ValueError):
    """A GSTIN that fails the length, format, state-code or check-character test."""


def state_label(code: str) -> str:
    """"33-Tamil Nadu": how a state or place of supply is printed."""
    return f"{code}-{BY_CODE[code].name}"


def is_union_territory(code: str) -> bool:
    """True where UTGST, not SGST, is levied with CGST."""
    return BY_CODE[code].utgst


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
    if gstin[:2] not in BY_CODE:
        raise InvalidGstin(f"{gstin[:2]} is not a GST state code.")
    if gstin_check_character(gstin[:14]) != gstin[14]:
        raise InvalidGstin("The GSTIN's check character is wrong: please check for a typing error.")
    return gstin


def validate_clinic_gstin(value: str, state_code: str) -> str:
    """A valid GSTIN (validate_gstin) that is registered in the clinic's state, or InvalidGstin."""
    gstin = validate_gstin(value)
    if gstin[:2] != state_code:
        raise InvalidGstin(f"This GSTIN is registered in state {gstin[:2]}, but the clinic's state is "
                           f"{state_code}: a GSTIN starts with its state's code.")
    return gstin


def is_valid_gstin(value: str) -> bool:
    """Whether `value` passes validate_gstin."""
    try:
        validate_gstin(value)
    except InvalidGstin:
        return False
    return True
