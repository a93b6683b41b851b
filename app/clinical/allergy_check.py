"""The allergy check at prescribing: each medicine against the patient's recorded allergies, by name and by
drug class (app/clinical/drug_classes.py), and the medicines of one class prescribed together.

A match by name or class stops signing until the doctor states why (the reason is sealed with the signed
prescription). A penicillin/cephalosporin cross-reaction is a caution, stopping signing only when it is
likelier (a shared side chain) or the allergy is recorded as severe. "No known allergies" and "not
recorded" (nothing on the list) are different states, and the prescription prints which one it is.
"""

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session

from app.clinical import chart
from app.clinical.drug_classes import AMINO_SIDE_CHAIN, BRANDS, CLASSES, CROSS_REACTIVE, GROUPS, OTHER_GENERICS
from app.clinical.models import ChartKind
from app.patients.models import Patient

LABELS = {c.key: c.label for c in CLASSES}
# spelling -> (generic, class key); class term -> class keys
SPELLINGS = {s: (generic, c.key) for c in CLASSES for generic, spellings in c.generics.items() for s in spellings}
TERMS = {**{t: (c.key,) for c in CLASSES for t in c.terms}, **GROUPS}
BRANDS_LONGEST_FIRST = sorted(BRANDS, key=len, reverse=True)  # "taxim o" (cefixime) before "taxim"
STRENGTH_WORDS = frozenset({"mg", "mcg", "g", "gm", "ml", "iu", "unit", "units", "kg"})


def normal(text: str) -> str:
    """Lower case, words only, "sulph" read as "sulf", letters and digits apart: " co amoxiclav 625 "."""
    text = re.sub(r"(?<=[a-z])(?=\d)|(?<=\d)(?=[a-z])", " ", (text or "").lower().replace("sulph", "sulf"))
    return f" {' '.join(re.sub(r'[^a-z0-9]+', ' ', text).split())} "


def _found(words: str, names) -> list[str]:
    return [name for name in names if f" {name} " in words]


def generic_words(text: str) -> str:
    """The text normalised, a brand it names read as the generics on its label: " amoxicillin clavulanic acid 625 "."""
    words = normal(text)
    for brand in BRANDS_LONGEST_FIRST:
        words = words.replace(f" {brand} ", f" {' '.join(BRANDS[brand])} ")
    return words


def ingredients(drug: str) -> dict[str, str]:
    """The known generics a medicine's name contains, with their class: {"sulfamethoxazole": "sulfonamides"}."""
    return dict(SPELLINGS[s] for s in _found(generic_words(drug), SPELLINGS))


def known(text: str) -> bool:
    """Whether the check recognises the name: a brand or generic it knows (in a class or not), or a class."""
    words = generic_words(text)
    return any(_found(words, names) for names in (SPELLINGS, TERMS, OTHER_GENERICS))


def without_strength(drug: str) -> str:
    """The medicine's generics without its strength: "Paracetamol 650 mg" and "Crocin 500" are "paracetamol"."""
    return " ".join(w for w in generic_words(drug).split() if not w.isdigit() and w not in STRENGTH_WORDS)


# --- What is recorded ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Allergen:
    """A recorded allergy as the check reads it: the whole classes it names, the generics it names."""

    label: str  # "Sulfonamides (severe)"
    words: str  # the substance, normalised
    whole: frozenset[str]  # classes named as a whole ("sulfa", "beta-lactams")
    generics: dict[str, str]  # generics named, with their class
    severe: bool
    known: bool  # a class, generic or brand the check knows

    @property
    def classes(self) -> frozenset[str]:
        return self.whole | frozenset(self.generics.values())


def allergen(details: Mapping) -> Allergen:
    """Read one recorded allergy (its sealed details)."""
    words = normal(details.get("substance", ""))
    whole = frozenset(key for term in _found(words, TERMS) for key in TERMS[term])
    substance = details.get("substance", "")
    return Allergen(chart.allergy_label(details), words, whole, ingredients(substance),
                    details.get("severity") == "severe", known(substance))


@dataclass(frozen=True)
class Recorded:
    """The patient's allergy status (chart.allergy_status): "listed" (with the allergies), "none" (no known
    allergies) or "unknown" (not recorded)."""

    state: str
    allergies: tuple[Allergen, ...] = ()

    @property
    def heading(self) -> str | None:
        """The rx_text heading that says "no known allergies" or "not recorded" (None when listed)."""
        return None if self.state == "listed" else f"allergies_{self.state}"

    @property
    def text(self) -> str:
        """"Sulfonamides (severe), Dust", "No known allergies" or "Not recorded"."""
        return chart.allergy_status([a.label for a in self.allergies], nka=self.state == "none").text

    def printed(self) -> dict:
        """What the signed prescription keeps of it (and prints)."""
        return {"state": self.state, "list": [a.label for a in self.allergies]}


def from_printed(printed: Mapping | None) -> Recorded | None:
    """The status sealed with a signed prescription (None for one signed before the check existed)."""
    if not printed:
        return None
    return Recorded(printed["state"], tuple(allergen({"substance": label}) for label in printed["list"]))


def recorded(db: Session, patient: Patient) -> Recorded:
    """The patient's current allergy status, from the allergy list (clinical content: the caller audits)."""
    items = sorted(chart.active(db, patient, chart.ALLERGY_KINDS), key=lambda i: (i.recorded_at, i.id))
    allergies = tuple(allergen(chart.open_details(db, i)) for i in items if i.kind is ChartKind.ALLERGY)
    nka = any(i.kind is ChartKind.NO_KNOWN_ALLERGIES for i in items)
    return Recorded(chart.allergy_status([a.label for a in allergies], nka=nka).state, allergies)


# --- The check ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Alert:
    """One medicine against one recorded allergy."""

    index: int  # the item's place on the prescription
    drug: str
    allergy: str
    message: str
    blocks: bool


@dataclass(frozen=True)
class Duplicate:
    """Medicines of one class (or the same medicine) on one prescription."""

    what: str  # "more than one of the macrolides", "the same medicine more than once"
    drugs: tuple[str, ...]

    @property
    def message(self) -> str:
        return f"Duplicate therapy, {self.what}: {', '.join(self.drugs)}."


@dataclass(frozen=True)
class Unchecked:
    """A name the check does not know, so silence about it means nothing: a warning, never blocking."""

    index: int | None  # the medicine's place on the prescription; None for a recorded allergy
    message: str


@dataclass(frozen=True)
class Review:
    recorded: Recorded
    alerts: tuple[Alert, ...]
    duplicates: tuple[Duplicate, ...]
    unchecked: tuple[Unchecked, ...] = ()

    @property
    def blocking(self) -> tuple[Alert, ...]:
        return tuple(a for a in self.alerts if a.blocks)

    def of(self, index: int) -> tuple[Alert, ...]:
        return tuple(a for a in self.alerts if a.index == index)


def _named(drug: str, generic: str) -> str:
    """"Cotrimoxazole (sulfamethoxazole)"; "Cefixime 200 mg" as is."""
    return drug if f" {generic} " in normal(drug) else f"{drug} ({generic})"


def _alert(index: int, drug: str, found: dict[str, str], allergy: Allergen) -> Alert | None:
    """The strongest match of a medicine with an allergy: the same medicine, its class, or a cross-reaction."""
    def alert(message: str, blocks: bool = True) -> Alert:
        return Alert(index, drug, allergy.label, message, blocks)

    same = set(found) & set(allergy.generics)
    if same or (len(allergy.words.strip()) >= 3 and allergy.words in normal(drug)):
        return alert(f"{drug}: the patient is recorded as allergic to {allergy.label}.")
    shared = [(g, c) for g, c in found.items() if c in allergy.classes]
    if shared:
        generic, key = shared[0]
        return alert(f"{_named(drug, generic)} is one of the {LABELS[key]}: the patient is recorded as allergic to "
                     f"{allergy.label}.")
    cross = [(g, c) for g, c in found.items() if any(c in CROSS_REACTIVE.get(k, ()) for k in allergy.classes)]
    if not cross:
        return None
    generic, key = cross[0]
    side_chain = generic in AMINO_SIDE_CHAIN and bool(
        AMINO_SIDE_CHAIN & set(allergy.generics) or allergy.whole & {"penicillins", "cephalosporins"})
    why = (" It shares a side chain with amoxicillin/ampicillin, so a reaction is likelier." if side_chain else
           " The allergy is recorded as severe." if allergy.severe else " Usually tolerated: check the reaction.")
    return alert(f"{_named(drug, generic)} is one of the {LABELS[key]}: a cross-reaction with the recorded allergy to "
                 f"{allergy.label} is uncommon but possible.{why}", blocks=side_chain or allergy.severe)


def _duplicates(items: Sequence[Mapping], found: list[dict[str, str]]) -> list[Duplicate]:
    by_class: dict[str, list[str]] = {}
    by_name: dict[str, list[str]] = {}
    for item, generics in zip(items, found, strict=True):
        for key in dict.fromkeys(generics.values()):
            by_class.setdefault(f"more than one of the {LABELS[key]}", []).append(item["drug"])
        if not generics:
            by_name.setdefault(without_strength(item["drug"]), []).append(item["drug"])
    groups = [*by_class.items(), *(("the same medicine more than once", drugs) for drugs in by_name.values())]
    return [Duplicate(what, tuple(drugs)) for what, drugs in groups if len(drugs) > 1]


def review(status: Recorded, items: Sequence[Mapping]) -> Review:
    """Every medicine against every recorded allergy, and the duplicates among the medicines."""
    found = [ingredients(item.get("drug", "")) for item in items]
    alerts = tuple(a for a in (_alert(i, item["drug"], found[i], allergy) for i, item in enumerate(items)
                               for allergy in status.allergies) if a)
    return Review(status, alerts, tuple(_duplicates(items, found)), _unchecked(status, items, alerts))


def _unchecked(status: Recorded, items: Sequence[Mapping], alerts: Sequence[Alert]) -> tuple[Unchecked, ...]:
    """The recorded allergies and the medicines (without an alert) whose names the check does not know."""
    if not (status.allergies and items):
        return ()
    listed = ", ".join(a.label for a in status.allergies)
    flagged = {a.index for a in alerts}
    return (*(Unchecked(None, f"Not checked: {a.label} is not a name the allergy check knows — check the medicines "
                              "against it yourself.") for a in status.allergies if not a.known),
            *(Unchecked(i, f"Not checked: {item['drug']} is not a name the allergy check knows — check it against "
                           f"{listed} yourself.") for i, item in enumerate(items)
              if i not in flagged and not known(item["drug"])))


def printed_override(review_: Review, reason: str) -> dict | None:
    """What a signed prescription keeps of an override: the doctor's reason and the alerts it answers."""
    if not review_.blocking:
        return None
    return {"reason": reason, "alerts": [a.message for a in review_.blocking]}
