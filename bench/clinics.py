"""The bench clinics: fifty clinics in over twenty states and union territories (one big clinic, seven
mid-sized ones, forty-two with one to six doctors), their staff, opening hours, appointment types, doctors'
weekly sessions, leave and closures. Created through the app's own models and runtime role (row-level
security on), as the demo seed does; the bulk rows (patients, appointments) come after, by COPY.

Every account signs in with the bench password and a TOTP secret derived from the master key, so the
benchmark can sign in again on a reused database without any file besides the master key.
"""

import base64
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.auth.models import StaffUser
from app.auth.policy import Role
from app.auth.services import hash_password, seal_totp_secret
from app.billing.issuing import supplier_particulars
from app.billing.models import BillingProfile, PriceRate
from app.clinics.models import Clinic, Membership
from app.clinics.states import BY_CODE, gstin_check_character
from app.db import set_tenant
from app.demo.billing import price_list
from app.scheduling import slots as sl
from app.scheduling.models import (
    AppointmentType,
    ClinicDay,
    ClinicHours,
    DoctorSession,
    ExceptionKind,
    SessionException,
)
from app.security.crypto import master_key
from app.security.fields import keyring
from bench.names import Place, staff_name

TZ = "Asia/Kolkata"
DOMAIN = "bench.clinicdesk.in"
DESKS_OF_BIG_CLINIC = 16


@dataclass(frozen=True)
class Spec:
    key: str
    name: str
    address_line: str
    place: Place
    doctors: int
    load: float  # appointments per doctor on a full working day, before scaling to the asked size
    slot_choices: tuple[int, ...]
    sunday: bool = False
    desks: int = 2


SPECS = [
    Spec("jayanagar", "Jayanagar Multispeciality Clinic", "22, 11th Main Road, Jayanagar 4th Block",
         Place("ka", "Bengaluru", "5600", "29"), 20, 20, (10, 15, 15, 20), desks=DESKS_OF_BIG_CLINIC),
    Spec("kothrud", "Kothrud Family Health Centre", "45, Karve Road, near Kothrud Depot",
         Place("mh", "Pune", "4110", "27"), 14, 30, (10, 10, 15), sunday=True),
    Spec("mylapore", "Mylapore Health Clinic", "8, Luz Church Road, Mylapore", Place("tn", "Chennai", "6000", "33"),
         12, 30, (10, 10, 15)),
    Spec("banjara", "Banjara Hills Polyclinic", "Road No. 12, Banjara Hills", Place("ts", "Hyderabad", "5000", "36"),
         12, 28, (10, 15)),
    Spec("lajpat", "Lajpat Nagar Medical Centre", "A-14, Ring Road, Lajpat Nagar IV",
         Place("dl", "New Delhi", "1100", "07"), 10, 30, (10, 10, 15), sunday=True),
    Spec("edappally", "Edappally Family Clinic", "NH 66, near Edappally Church", Place("kl", "Kochi", "6820", "32"),
         8, 26, (10, 15)),
    Spec("saltlake", "Salt Lake City Clinic", "CF-231, Sector I, Salt Lake", Place("wb", "Kolkata", "7000", "19"),
         7, 28, (10, 15)),
    Spec("navrangpura", "Navrangpura Care Clinic", "3, Swastik Char Rasta, Navrangpura",
         Place("gj", "Ahmedabad", "3800", "24"), 7, 28, (10, 15), sunday=True),
] + [
    # Smaller clinics: a family doctor or a few, in neighbourhoods across the country.
    Spec(key, name, address, Place(region, city, pin, state), doctors, load, slots, sunday=sunday)
    for key, name, address, region, city, pin, state, doctors, load, slots, sunday in (
        ("basavanagudi", "Basavanagudi Family Clinic", "31, DVG Road, Basavanagudi", "ka", "Bengaluru", "5600", "29", 3,
         26, (10, 15), False),
        ("hsr", "HSR Layout Health Point", "512, 27th Main, HSR Layout Sector 1", "ka", "Bengaluru", "5601",
         "29", 4, 24,
         (10, 15), True),
        ("saraswathipuram", "Saraswathipuram Clinic", "1st Main, Saraswathipuram", "my", "Mysuru", "5700", "29", 2, 22,
         (15,), False),
        ("dadar", "Dadar Polyclinic", "Ranade Road, Dadar West", "mb", "Mumbai", "4000", "27", 6, 30, (10, 10, 15),
         True),
        ("andheri", "Andheri East Family Clinic", "Shop 4, Sahar Road, Andheri East", "mb", "Mumbai", "4000", "27", 3,
         28, (10, 15), False),
        ("thane", "Thane Wellness Clinic", "Gokhale Road, Naupada, Thane West", "mb", "Thane", "4006", "27", 2, 26,
         (15,), False),
        ("aundh", "Aundh Child and Family Clinic", "ITI Road, Aundh", "mh", "Pune", "4110", "27", 2, 24, (10, 15),
         False),
        ("adyar", "Adyar Medical Centre", "LB Road, Adyar", "tn", "Chennai", "6000", "33", 4, 28, (10, 15), False),
        ("rspuram", "RS Puram Clinic", "DB Road, RS Puram", "cb", "Coimbatore", "6410", "33", 3, 24, (10, 15), False),
        ("annanagar", "Anna Nagar Health Clinic", "2nd Avenue, Anna Nagar", "tn", "Chennai", "6001", "33", 2, 26, (15,),
         True),
        ("kukatpally", "Kukatpally Family Clinic", "KPHB Colony, Kukatpally", "ts", "Hyderabad", "5000", "36", 3, 28,
         (10, 15), False),
        ("secunderabad", "Secunderabad Clinic", "SD Road, Secunderabad", "ts", "Secunderabad", "5000", "36", 2, 24,
         (15,), False),
        ("dwarka", "Dwarka Sector 10 Clinic", "Plot 7, Sector 10, Dwarka", "dl", "New Delhi", "1100", "07", 4, 28,
         (10, 15), True),
        ("rohini", "Rohini Health Centre", "B-3, Sector 7, Rohini", "dl", "New Delhi", "1100", "07", 3, 30, (10, 15),
         False),
        ("kakkanad", "Kakkanad Clinic", "Seaport-Airport Road, Kakkanad", "kl", "Kochi", "6820", "32", 2, 22, (15,),
         False),
        ("pattom", "Pattom Family Clinic", "Pattom Palace Road, Pattom", "tv", "Thiruvananthapuram", "6950",
         "32", 3, 24,
         (10, 15), False),
        ("behala", "Behala Medical Clinic", "Diamond Harbour Road, Behala", "wb", "Kolkata", "7000", "19", 3, 28,
         (10, 15), True),
        ("gariahat", "Gariahat Clinic", "Gariahat Road, Ballygunge", "wb", "Kolkata", "7000", "19", 2, 26,
         (15,), False),
        ("adajan", "Adajan Care Clinic", "Honey Park Road, Adajan", "sr", "Surat", "3950", "24", 3, 26, (10, 15),
         True),
        ("gomtinagar", "Gomti Nagar Clinic", "Vibhuti Khand, Gomti Nagar", "up", "Lucknow", "2260", "09", 4, 30,
         (10, 15), True),
        ("aliganj", "Aliganj Family Health", "Sector C, Aliganj", "up", "Lucknow", "2260", "09", 2, 28, (15,), False),
        ("malviyanagar", "Malviya Nagar Health Clinic", "Sector 5, Malviya Nagar", "rj", "Jaipur", "3020", "08", 3, 28,
         (10, 15), True),
        ("vaishali", "Vaishali Nagar Clinic", "Amrapali Marg, Vaishali Nagar", "rj", "Jaipur", "3020", "08", 2, 24,
         (15,), False),
        ("sarabha", "Sarabha Nagar Clinic", "Main Market, Sarabha Nagar", "pb", "Ludhiana", "1410", "03", 3, 26,
         (10, 15), False),
        ("sector22", "Sector 22 Family Clinic", "SCO 1012, Sector 22-B", "ch", "Chandigarh", "1600", "04", 3, 26,
         (10, 15), False),
        ("dlfphase3", "DLF Phase 3 Clinic", "U-Block, DLF Phase 3", "hr", "Gurugram", "1220", "06", 4, 28, (10, 15),
         True),
        ("benzcircle", "Benz Circle Clinic", "MG Road, Benz Circle", "ap", "Vijayawada", "5200", "37", 3, 30, (10, 15),
         False),
        ("dwarakanagar", "Dwaraka Nagar Health Clinic", "Diamond Park Road, Dwaraka Nagar", "vz", "Visakhapatnam",
         "5300", "37", 2, 26, (15,), False),
        ("vijaynagar", "Vijay Nagar Family Clinic", "Scheme 54, Vijay Nagar", "mp", "Indore", "4520", "23", 3, 28,
         (10, 15), True),
        ("areracolony", "Arera Colony Clinic", "E-7, Arera Colony", "bp", "Bhopal", "4620", "23", 2, 24, (15,), False),
        ("shankarnagar", "Shankar Nagar Clinic", "Main Road, Shankar Nagar", "cg", "Raipur", "4920", "22", 2, 26, (15,),
         False),
        ("kankarbagh", "Kankarbagh Health Centre", "Main Road, Kankarbagh", "br", "Patna", "8000", "10", 4, 32,
         (10, 15), True),
        ("boringroad", "Boring Road Clinic", "Boring Road Crossing", "br", "Patna", "8000", "10", 1, 30, (10,), False),
        ("lalpur", "Lalpur Family Clinic", "Circular Road, Lalpur", "jh", "Ranchi", "8340", "20", 2, 28, (15,), False),
        ("saheednagar", "Saheed Nagar Clinic", "Plot 210, Saheed Nagar", "od", "Bhubaneswar", "7510", "21", 3, 26,
         (10, 15), False),
        ("nayapalli", "Nayapalli Care Clinic", "Nayapalli Main Road", "od", "Bhubaneswar", "7510", "21", 1, 24, (15,),
         False),
        ("ganeshguri", "Ganeshguri Clinic", "GS Road, Ganeshguri", "as", "Guwahati", "7810", "18", 3, 26, (10, 15),
         True),
        ("zooroad", "Zoo Road Family Clinic", "RG Baruah Road, Zoo Road", "as", "Guwahati", "7810", "18", 1, 24, (15,),
         False),
        ("altinho", "Altinho Clinic", "Altinho Hill Road, Panaji", "ga", "Panaji", "4030", "30", 2, 22, (15,), False),
        ("whitetown", "White Town Clinic", "Rue Suffren, White Town", "py", "Puducherry", "6050", "34", 2, 24, (15,),
         False),
        ("rajpurroad", "Rajpur Road Clinic", "Rajpur Road, near Astley Hall", "uk", "Dehradun", "2480", "05", 2, 24,
         (15,), False),
        ("modeltown", "Model Town Clinic", "Model Town Extension", "pb", "Ludhiana", "1410", "03", 1, 28, (10,), True),
    )
]
# A 1-slot and a 2-slot type exists for every slot length.
# (name, minutes, colour, billable item: a code of the demo price list, app/demo/billing.py)
TYPES = [("Follow-up", 10, "blue", "FOLLOWUP"), ("Vaccination", 10, "green", "VACC-ADMIN"),
         ("Consultation", 15, "teal", "CONSULT"), ("New patient", 20, "indigo", "CONSULT"),
         ("Procedure", 30, "purple", "DRESSING"), ("Health check", 40, "amber", "LIPID")]
SPECIALITIES = ("General Medicine", "General Medicine", "General Medicine", "Paediatrics", "Internal Medicine",
                "Dermatology", "Orthopaedics", "Obstetrics and Gynaecology")
WEEK_HOURS = {weekday: (time(8), time(21)) for weekday in range(6)}
SUNDAY_HOURS = {6: (time(9), time(13))}


@dataclass
class Doctor:
    id: uuid.UUID
    sessions: list[sl.WeeklySession]
    leaves: list[sl.Leave] = field(default_factory=list)


@dataclass(frozen=True)
class Item:
    """A price-list item as documents copy it onto their lines."""

    id: uuid.UUID
    code: str
    name: str
    hsn_sac: str
    unit: str
    price: Decimal
    price_includes_tax: bool
    treatment: str
    rates: tuple[tuple[date, Decimal], ...]  # (from, rate), oldest first

    def rate_on(self, day: date) -> Decimal:
        return next((rate for since, rate in reversed(self.rates) if since <= day), Decimal(0))


@dataclass
class ClinicPlan:
    """One clinic as the generator needs it: ids, hours, doctors and their availability, types."""

    index: int
    id: uuid.UUID
    spec: Spec
    hours: dict[int, tuple[time, time]]
    closures: dict[date, sl.Override]
    doctors: list[Doctor]
    desks: list[uuid.UUID]
    types: dict[int, list[uuid.UUID]]  # minutes -> type ids
    patients: int = 0
    type_items: dict[uuid.UUID, str] = field(default_factory=dict)  # type id -> the price item it bills
    items: dict[str, Item] = field(default_factory=dict)  # the price list by code
    supplier: str = ""  # the clinic's particulars as its documents print them (JSON)

    def doctor_day(self, doctor: Doctor, day: date) -> sl.DoctorDay:
        status = sl.clinic_day(day, self.hours, self.closures.get(day), self.spec.place.state_code)
        return sl.doctor_day(day, TZ, status, doctor.sessions, doctor.leaves, [])


def uuid7(ms: int, rng: random.Random | int) -> uuid.UUID:
    """A UUIDv7 for a moment (like app.db.new_id, but at a given time), its 74 random bits from a seeded
    generator (or given)."""
    rand = rng if isinstance(rng, int) else rng.getrandbits(74)
    value = (ms << 80) | (0x7 << 76) | ((rand >> 62) << 64) | (0b10 << 62) | (rand & ((1 << 62) - 1))
    return uuid.UUID(int=value)


def email(kind: str, spec: Spec, number: int | None = None) -> str:
    return f"{kind}{number:02d}.{spec.key}@{DOMAIN}" if number else f"{kind}.{spec.key}@{DOMAIN}"


def password() -> str:
    """Every bench account's password (derived from the master key; needs an app context)."""
    return "bench-" + master_key().keyed_hash("bench-password", DOMAIN)[:20]


def totp_secret(address: str) -> str:
    """A bench account's TOTP secret (derived from the master key; needs an app context)."""
    raw = bytes.fromhex(master_key().keyed_hash("bench-totp", address))[:20]
    return base64.b32encode(raw).decode()


def _gstin(rng: random.Random, state_code: str) -> str:
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    pan = "".join(rng.choice(letters) for _ in range(5)) + f"{rng.randrange(10000):04d}" + rng.choice(letters)
    first14 = f"{state_code}{pan}1Z"
    return first14 + gstin_check_character(first14)


def _sessions(rng: random.Random, spec: Spec, big: bool) -> list[sl.WeeklySession]:
    minutes = rng.choice(spec.slot_choices)
    room = f"Room {rng.randint(1, 12)}"
    morning = rng.choice((time(9), time(9, 30), time(10)))
    evening = rng.choice((time(16), time(17), time(17, 30)))
    evening_days = range(6) if big else sorted(rng.sample(range(6), rng.randint(3, 6)))
    out = [sl.WeeklySession(w, morning, _plus(morning, 240), minutes, room) for w in range(6)]
    out += [sl.WeeklySession(w, evening, _plus(evening, 210), minutes, room) for w in evening_days]
    if spec.sunday and rng.random() < 0.3:
        out.append(sl.WeeklySession(6, time(9, 30), time(12, 30), minutes, room))
    return out


def _leaves(rng: random.Random, first: date, last: date, keep_free: date | None) -> list[sl.Leave]:
    """Two or three spells of leave a year and now and then an afternoon off."""
    leaves, day = [], first
    while day < last:
        day += timedelta(days=rng.randint(60, 200))
        span = rng.randint(0, 4)
        if keep_free is None or not day <= keep_free <= day + timedelta(days=span):
            if rng.random() < 0.25:
                leaves.append(sl.Leave(day, day, time(16), time(21)))
            else:
                leaves.append(sl.Leave(day, day + timedelta(days=span)))
    return [leave for leave in leaves if leave.first_day <= last]


def _add_person(db: Session, clinic: Clinic, address: str, name: str, role: Role, password_hash: str,
                rng: random.Random, ms: int) -> uuid.UUID:
    user = StaffUser(id=uuid7(ms, rng), email=address, full_name=name, password_hash=password_hash)
    if role is Role.DOCTOR:  # what a signed prescription prints
        user.speciality = rng.choice(SPECIALITIES)
        user.qualifications = "MBBS, MD" if user.speciality != "General Medicine" else "MBBS"
        user.registration_number = f"{clinic.state_code}-{rng.randint(10000, 99999)}"
        user.registration_council = f"{BY_CODE[clinic.state_code].name} Medical Council"
    user.totp_secret_enc = seal_totp_secret(user, totp_secret(address))
    user.mfa_enrolled_at = user.password_changed_at = user.created_at = _at(ms)
    db.add(user)
    db.flush()
    db.add(Membership(clinic_id=clinic.id, user_id=user.id, role=role))
    return user.id


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def _plus(moment: time, minutes: int) -> time:
    return (datetime.combine(date.min, moment) + timedelta(minutes=minutes)).time()


def create(db: Session, rng: random.Random, *, first: date, last: date, bench_day: date, ms: int) -> list[ClinicPlan]:
    """Create every clinic with its staff and schedule set-up; returns the plans the generator fills."""
    password_hash = hash_password(password())  # one argon2 hash for every bench account: set-up stays fast
    plans = []
    for index, spec in enumerate(SPECS):
        big = index == 0
        clinic = Clinic(id=uuid7(ms, rng), name=spec.name, legal_name=f"{spec.name} LLP",
                        address_line=spec.address_line, city=spec.place.city, pin_code=f"{spec.place.pin_prefix}11",
                        state_code=spec.place.state_code, gstin=_gstin(rng, spec.place.state_code), timezone=TZ)
        set_tenant(db, clinic_id=clinic.id, user_id=None)
        db.add(clinic)
        db.flush()
        keyring(db, clinic.id)  # the clinic's first data key, made the way the app makes it
        _add_person(db, clinic, email("admin", spec), staff_name(rng, spec.place.region, doctor=False)[0],
                    Role.ADMIN, password_hash, rng, ms)
        desks = [_add_person(db, clinic, email("desk", spec, n), staff_name(rng, spec.place.region, doctor=False)[0],
                             Role.RECEPTION, password_hash, rng, ms) for n in range(1, spec.desks + 1)]
        doctors = []
        for n in range(1, spec.doctors + 1):
            doctor_id = _add_person(db, clinic, email("doctor", spec, n),
                                    staff_name(rng, spec.place.region, doctor=True)[0], Role.DOCTOR, password_hash,
                                    rng, ms)
            doctors.append(Doctor(doctor_id, _sessions(rng, spec, big),
                                  _leaves(rng, first, last, bench_day if big else None)))
        plan = ClinicPlan(index, clinic.id, spec, WEEK_HOURS | (SUNDAY_HOURS if spec.sunday else {}),
                          _closures(rng, first, last, bench_day), doctors, desks, {})
        _write_schedule(db, plan, desks[0], rng, ms)
        _write_billing(db, clinic, plan, desks[0])
        plans.append(plan)
    db.flush()
    return plans


def _write_billing(db: Session, clinic: Clinic, plan: ClinicPlan, desk: uuid.UUID) -> None:
    """The clinic's GST profile (no fee validity) and the demo price list, as the demo seeds them."""
    profile = BillingProfile(clinic_id=clinic.id, signatory_name=f"Dr. {clinic.name.split()[0]} Rao",
                             signatory_designation="Designated Partner", invoice_prefix="INV",
                             bill_of_supply_prefix="BOS", credit_note_prefix="CN", receipt_prefix="RCT",
                             fee_validity_days=0, updated_by=desk)
    db.add(profile)
    made = price_list(db, clinic, desk)
    rates = {}
    for item_id, since, rate in db.execute(select(PriceRate.item_id, PriceRate.effective_from, PriceRate.rate)
                                           .where(PriceRate.clinic_id == clinic.id)
                                           .order_by(PriceRate.effective_from)):
        rates.setdefault(item_id, []).append((since, rate))
    plan.items = {code: Item(i.id, code, i.name, i.hsn_sac, i.unit, i.price, i.price_includes_tax, i.treatment.value,
                             tuple(rates.get(i.id, ()))) for code, i in made.items()}
    plan.supplier = supplier_particulars(clinic, profile)


def _closures(rng: random.Random, first: date, last: date, bench_day: date) -> dict[date, sl.Override]:
    span = max((last - first).days, 1)
    days = {first + timedelta(days=rng.randrange(span)) for _ in range(span // 365)}
    return {day: sl.Override(False, "Closed for annual maintenance") for day in days if day != bench_day}


def _write_schedule(db: Session, plan: ClinicPlan, desk: uuid.UUID, rng: random.Random, ms: int) -> None:
    cid = plan.id
    db.add_all(ClinicHours(clinic_id=cid, weekday=w, opens=o, closes=c) for w, (o, c) in plan.hours.items())
    db.add_all(ClinicDay(clinic_id=cid, day=d, is_open=o.is_open, note=o.note, created_by=desk, created_at=_at(ms))
               for d, o in plan.closures.items())
    for name, minutes, colour, item in TYPES:
        type_id = uuid7(ms, rng)
        plan.types.setdefault(minutes, []).append(type_id)
        plan.type_items[type_id] = item
        db.add(AppointmentType(clinic_id=cid, id=type_id, name=name, duration_minutes=minutes, colour=colour,
                               billable_item=item, active=True, created_at=_at(ms)))
    for doctor in plan.doctors:
        db.add_all(DoctorSession(clinic_id=cid, id=uuid7(ms, rng), doctor_id=doctor.id, weekday=s.weekday,
                                 starts=s.starts, ends=s.ends, slot_minutes=s.slot_minutes, room=s.room,
                                 updated_at=_at(ms), updated_by=desk) for s in doctor.sessions)
        db.add_all(SessionException(clinic_id=cid, id=uuid7(ms, rng), doctor_id=doctor.id, kind=ExceptionKind.LEAVE,
                                    first_day=leave.first_day, last_day=leave.last_day, starts=leave.starts,
                                    ends=leave.ends, note="Leave", created_by=desk, created_at=_at(ms))
                   for leave in doctor.leaves)
    db.flush()
