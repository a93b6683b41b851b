"""Amounts in words, Indian numbering, for the "amount in words" line of a document (in figures: app/formats.inr).

"Rupees One Lakh Twenty-Three Thousand Four Hundred Fifty-Six and Seventy Paise Only".

- Indian grouping: hundred, thousand (10^3), lakh (10^5), crore (10^7); past 99 crore the crore count
  is itself read in Indian words ("One Lakh Crore"), so there is no upper limit.
- Tens and units are hyphenated ("Twenty-Three"); no "and" inside the rupees, only before the paise.
- Zero rupees with paise reads "Fifty Paise Only"; zero is "Rupees Zero Only"; one paisa is
  "One Paisa".
- The amount is a non-negative Decimal in whole paise. A credit note passes its absolute value.

Written here rather than taken from num2words: its en_IN output puts "and" and commas inside the
number ("four hundred and fifty-six") and overflows at 10^10.
"""

from decimal import Decimal

_UNITS = (
    "Zero", "One", "Two", "Three", "Four", "Five", "Six", "Seven", "Eight", "Nine", "Ten", "Eleven", "Twelve",
    "Thirteen", "Fourteen", "Fifteen", "Sixteen", "Seventeen", "Eighteen", "Nineteen",
)
_TENS = ("", "", "Twenty", "Thirty", "Forty", "Fifty", "Sixty", "Seventy", "Eighty", "Ninety")
_GROUPS = ((10**7, "Crore"), (10**5, "Lakh"), (10**3, "Thousand"), (100, "Hundred"))


def _below_hundred(n: int) -> str:
    if n < 20:
        return _UNITS[n]
    tens, units = divmod(n, 10)
    return _TENS[tens] + (f"-{_UNITS[units]}" if units else "")


def number_in_words(n: int) -> str:
    """A whole number ≥ 0 in Indian-numbering words: 123456 → "One Lakh Twenty-Three Thousand …"."""
    if n < 100:
        return _below_hundred(n)
    for size, name in _GROUPS:
        if n >= size:
            count, rest = divmod(n, size)
            head = f"{number_in_words(count)} {name}"
            return f"{head} {number_in_words(rest)}" if rest else head
    raise AssertionError("unreachable")  # pragma: no cover


def amount_in_words(amount: Decimal) -> str:
    """Rupees and paise in words, ending "Only"."""
    if not isinstance(amount, Decimal) or amount < 0 or amount != amount.quantize(Decimal("0.01")):
        raise ValueError(f"An amount in words needs a non-negative Decimal in whole paise, not {amount!r}.")
    rupees, paise = divmod(int(amount * 100), 100)
    paise_words = f"{number_in_words(paise)} {'Paisa' if paise == 1 else 'Paise'}"
    if not paise:
        return f"Rupees {number_in_words(rupees)} Only"
    if not rupees:
        return f"{paise_words} Only"
    return f"Rupees {number_in_words(rupees)} and {paise_words} Only"

