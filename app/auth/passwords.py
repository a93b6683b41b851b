"""Whether a new password may be used: its length, and that it is no breached or predictable password.

NIST 800-63B 5.1.1.2 and ASVS 2.1.7: no composition rules, but a blocklist of compromised values.
The check runs offline with zxcvbn (MIT, pinned in requirements.txt). It ships the 30,000 most common
passwords of Mark Burnett's corpus of 10 million passwords from public breaches (Xato, 2015) and
matches them with capitals, l33t spellings and reversals, besides keyboard walks (qwertyuiop,
1qaz2wsx3edc), sequences, repeats and dates. A new password must take zxcvbn more than 10^8 guesses,
and must not be a listed password (or a word below) wrapped in digits and symbols (Password@123).
"""

import string

from zxcvbn import zxcvbn
from zxcvbn.matching import RANKED_DICTIONARIES

PASSWORD_MIN, PASSWORD_MAX = 12, 128
MIN_GUESSES = 10 ** 8
# Words an attacker tries first against a clinic's staff accounts in India, besides the user's own.
LOCAL_WORDS = ["clinicdesk", "clinic", "doctor", "hospital", "health", "medical", "patient", "nurse", "india",
               "bharat", "welcome", "admin"]
_WRAPPING = string.digits + string.punctuation + string.whitespace
BREACHED = ("This password is on lists of passwords leaked in breaches, or follows a pattern that "
            "attackers try first{why}. Choose another: a short sentence of your own is easy to remember.")


def password_problem(password: str, *, email: str = "", name: str = "") -> str | None:
    """Why a new password is not acceptable, or None."""
    if len(password) < PASSWORD_MIN:
        return f"Use at least {PASSWORD_MIN} characters."
    if len(password) > PASSWORD_MAX:
        return f"Use at most {PASSWORD_MAX} characters."
    local = email.split("@")[0].lower()
    if local and len(local) >= 4 and local in password.lower():
        return "Do not use your e-mail address in your password."
    names = name.lower().split()
    own = [word for word in (local, "".join(names), *names, *LOCAL_WORDS) if word]
    estimate = zxcvbn(password, user_inputs=own)
    if estimate["guesses"] < MIN_GUESSES or _wrapped_word(password, own):
        warning = estimate["feedback"]["warning"].rstrip(".")
        return BREACHED.format(why=f" ({warning[0].lower()}{warning[1:]})" if warning else "")
    return None


def _wrapped_word(password: str, own: list[str]) -> bool:
    """A listed password, or one of `own`, with only digits and symbols before or after it."""
    core = password.strip(_WRAPPING).lower()
    return core != password.lower() and (core in RANKED_DICTIONARIES["passwords"] or core in own)
