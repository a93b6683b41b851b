"""Vital-sign trends: small server-drawn SVG charts (no JavaScript), each with a table of its values as
the fallback, over a patient's recent sets; entered-in-error sets are left out by the caller."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from app import formats

if TYPE_CHECKING:
    from app.clinical.vitals import Reading, VitalsSet


def outside(value, low, high) -> str | None:
    """"low" below `low`, "high" from `high` up (either bound may be None)."""
    if low is not None and value < low:
        return "low"
    if high is not None and value >= high:
        return "high"
    return None


def trim(value) -> str:
    return f"{value:g}"


@dataclass(frozen=True)
class TrendSpec:
    key: str
    label: str  # also the label of its Reading
    unit: str
    series: tuple[str, ...]  # value keys, one line each
    band: tuple[float, float] | None = None  # the adult normal range, shaded


TREND_SPECS = [
    TrendSpec("bp", "Blood pressure", "mmHg", ("systolic", "diastolic")),
    TrendSpec("pulse", "Pulse", "/min", ("pulse",), (60, 100)),
    TrendSpec("temperature", "Temperature", "°C", ("temperature_c",), (35, 37.5)),
    TrendSpec("spo2", "SpO2", "%", ("spo2",), (95, 100)),
    TrendSpec("weight", "Weight", "kg", ("weight_kg",)),
    TrendSpec("glucose", "Blood glucose", "mg/dL", ("glucose_mg_dl",)),
]
WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM = 300, 96, 44, 8, 8, 8


@dataclass(frozen=True)
class Dot:
    x: float
    y: float
    title: str
    flagged: bool


@dataclass(frozen=True)
class Trend:
    """One measure over the latest valid sets: polylines, dots, the normal band, and the same as a table."""

    key: str
    label: str
    unit: str
    lines: list[tuple[str, str]]  # (series key, SVG points "x,y x,y")
    dots: list[Dot]
    rows: list[tuple[datetime, Reading]]  # oldest first
    band: tuple[float, float] | None  # (y, height) of the shaded normal range
    scale: list[tuple[float, str]]  # (y, label) of the highest and (if different) the lowest value
    summary: str
    width: int = WIDTH
    height: int = HEIGHT


def trends_of(sets: list[VitalsSet], zone: ZoneInfo, *, bands: bool = True) -> list[Trend]:
    """A trend per measure with at least two readings among `sets` (newest first), drawn oldest to newest."""
    out = []
    for spec in TREND_SPECS:
        taken = [s for s in reversed(sets) if all(k in s.values for k in spec.series)]
        if len(taken) >= 2:
            out.append(_trend(spec, taken, zone, bands))
    return out


def _trend(spec: TrendSpec, taken: list[VitalsSet], zone: ZoneInfo, bands: bool) -> Trend:
    band = spec.band if bands else None
    numbers = [float(s.values[k]) for s in taken for k in spec.series] + list(band or ())
    low, high = min(numbers), max(numbers)
    pad = (high - low) * 0.1 or 1.0
    low, high = low - pad, high + pad
    step = (WIDTH - LEFT - RIGHT) / (len(taken) - 1)

    def y(value) -> float:
        return round(TOP + (high - float(value)) / (high - low) * (HEIGHT - TOP - BOTTOM), 1)

    rows = [(s.row.taken_at, next(r for r in s.readings if r.label == spec.label)) for s in taken]
    lines, dots = [], []
    for key in spec.series:
        points = [(round(LEFT + i * step, 1), y(s.values[key])) for i, s in enumerate(taken)]
        lines.append((key, " ".join(f"{px},{py}" for px, py in points)))
        dots += [Dot(px, py, _dot_title(when, reading, zone), _dot_flagged(key, s, reading))
                 for (px, py), s, (when, reading) in zip(points, taken, rows, strict=True)]
    values = [float(s.values[k]) for s in taken for k in spec.series]
    scale = [(y(max(values)), trim(max(values)))] + ([(y(min(values)), trim(min(values)))]
                                                      if min(values) != max(values) else [])
    return Trend(spec.key, spec.label, spec.unit, lines, dots, rows,
                 (y(band[1]), round(y(band[0]) - y(band[1]), 1)) if band else None, scale,
                 _summary(spec, rows, zone))


# Blood pressure is flagged as a pair; on the chart each line marks only its own out-of-range values.
PRESSURE_LIMITS = {"systolic": (90, 140), "diastolic": (60, 90)}


def _dot_flagged(key: str, taken: VitalsSet, reading: Reading) -> bool:
    if key in PRESSURE_LIMITS:
        return taken.adult and outside(taken.values[key], *PRESSURE_LIMITS[key]) is not None
    return reading.flag is not None


def _dot_title(when: datetime, reading: Reading, zone: ZoneInfo) -> str:
    badge = f" ({reading.badge})" if reading.badge else ""
    return f"{formats.moment(when, zone.key)}: {reading.text}{badge}"


def _summary(spec: TrendSpec, rows: list[tuple[datetime, Reading]], zone: ZoneInfo) -> str:
    first, last = rows[0][0].astimezone(zone), rows[-1][0].astimezone(zone)
    flagged = sum(1 for _, r in rows if r.flag)
    outside = f" {flagged} outside the normal range." if flagged else ""
    return (f"{spec.label}: {len(rows)} readings from {formats.day(first)} to {formats.day(last)}, evenly spaced; "
            f"latest {rows[-1][1].text}.{outside}")
