"""How money and dates read to people: one function for amounts, one family for dates, all through Babel.

Kernel: imports nothing of the app, so every domain, page, job and message text can use it.

- Money (`inr`): Indian grouping (lakh, crore) and two decimals, ₹1,23,456.50; negative -₹0.40. Every
  page, PDF, CSV display column, flash message and message text writes an amount with it.
- Dates (`day`, `moment`, `clock`): Babel's CLDR patterns in "en_IN" or "hi_IN", never hand tables or
  glibc-only strftime flags (`%-d`). The patterns are CLDR's (`dd MMM y` = "05 Apr 2026",
  `EEE d MMM` = "Tue 24 Nov", `EEEE, d MMMM` = "मंगलवार, 24 नवंबर"). CLDR's Indian English spells
  September "Sept". Digits stay Latin in Hindi (hi_IN's default numbering), as patients type them back.
- Machine formats (ISO dates, the GST portal's "05-Apr-2026") are not display text: they stay strftime.
"""

from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_datetime, get_day_names
from babel.numbers import format_currency

LOCALES = {"en": "en_IN", "hi": "hi_IN"}
DAY = "dd MMM y"  # 05 Apr 2026: the date on documents, lists and registers
MOMENT = "dd MMM y, HH:mm"  # 21 Nov 2026, 10:42


def inr(amount: Decimal | int | None) -> str:
    """₹ with Indian digit grouping (lakh, crore) and two decimals: ₹1,23,456.50; negative: -₹0.40."""
    if amount is None:
        return ""
    value = Decimal(amount)
    if value == 0:  # a credit note's negated zero (-0.00) would print "-₹0.00"
        value = abs(value)
    return format_currency(value, "INR", locale=LOCALES["en"])


def percent(rate: Decimal | int) -> str:
    """A tax or discount rate as printed: 2.5%, 9%, 18%."""
    return f"{Decimal(rate).normalize():f}%"


def day(value: date | None, pattern: str = DAY, language: str = "en") -> str:
    """A calendar day in a CLDR pattern: "05 Apr 2026"; "" for none."""
    if value is None:
        return ""
    return format_date(value, pattern, locale=LOCALES.get(language, LOCALES["en"]))


def moment(value: datetime | None, tz: str | None = None, pattern: str = MOMENT, language: str = "en") -> str:
    """An instant in a time zone (or as the wall time it carries), in a CLDR pattern: "21 Nov 2026, 10:42"."""
    if value is None:
        return ""
    zone = ZoneInfo(tz) if tz else None
    return format_datetime(value, pattern, tzinfo=zone, locale=LOCALES.get(language, LOCALES["en"]))


@lru_cache(maxsize=8192)
def clock(value: datetime, tz: str) -> str:
    """'10:30' in the time zone; cached because a board shows the same few dozen times hundreds of times."""
    return moment(value, tz, "HH:mm")


def weekday_names(width: str = "wide", language: str = "en") -> list[str]:
    """CLDR's day names, Monday first as `date.weekday()` counts: ["Monday", …] or ["सोमवार", …]."""
    names = get_day_names(width, locale=LOCALES.get(language, LOCALES["en"]))
    return [names[weekday] for weekday in range(7)]
