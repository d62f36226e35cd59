"""Per-resident event plans: which facilities a resident visits and what each one sends.

A resident visits one to three facilities (the city hospital, their county hospital, their
township or village facility). Each visit starts with an ADT registration (A04, or A01 for
an admission) and may be followed by lab results, an imaging order, a vaccination, a
discharge summary, an appointment, fees, a phone-number update (A08), or a duplicate
registration under a second MRN that the facility later merges (A40). Facilities other than
the first may misspell the name or swap day and month of the birth date.

May import: other `adapters.synth` modules, the standard library.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from adapters.synth import messages as m
from adapters.synth.clinical import VACCINES, Diagnosis, pick_diagnosis
from adapters.synth.facilities import Facility, IdPlacement, facilities_for
from adapters.synth.names import name_variant, pick_phone
from adapters.synth.residents import IdForm, Resident, id_as_sent, transpose_birth

Built = tuple[list[str], dict[str, Any]]
Emit = Callable[[datetime, str, Built], None]
MakeHeader = Callable[[datetime], m.Header]

START = datetime(2026, 9, 1, 8, 0)
"""Local time (Asia/Shanghai) of the first synthetic event."""


@dataclass(slots=True)
class Counters:
    """Per-facility sequence numbers (MRNs, control ids, visits, accessions, documents)."""

    values: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))

    def next(self, facility: str, what: str) -> int:
        """The next number (from 1) of kind `what` at `facility`."""
        self.values[(facility, what)] += 1
        return self.values[(facility, what)]


@dataclass(frozen=True, slots=True)
class Event:
    """One planned message, already encoded as segments, with its truth-file record."""

    when: datetime
    resident_index: int
    seq: int
    facility: Facility
    message_type: str
    segments: list[str]
    truth: dict[str, Any]


@dataclass(slots=True)
class _Visit:
    facility: Facility
    view: m.PatientView
    quirks: list[str]


def _id_form(rng: random.Random, resident: Resident) -> IdForm:
    roll = rng.random()
    if roll < 0.04:
        return "invalid"
    if roll < 0.10 and resident.birth.year < 2000:
        return "15"
    if resident.resident_id.endswith("X") and roll < 0.5:
        return "lower_x"
    return "18"


def _view(rng: random.Random, resident: Resident, facility: Facility, mrn: str, first: bool) -> _Visit:
    quirks: list[str] = []
    family, given, birth = resident.family, resident.given, resident.birth
    if not first and rng.random() < 0.15:
        family, given, kind = name_variant(rng, family, given)
        quirks.append(f"name_{kind}")
    if not first and rng.random() < 0.05:
        swapped = transpose_birth(birth)
        if swapped is not None:
            birth = swapped
            quirks.append("birth_transposed")
    placements = list(facility.id_placement)
    weights = [facility.id_placement[p] for p in placements]
    placement: IdPlacement = rng.choices(placements, weights=weights)[0]
    sent: str | None = None
    if placement != "none":
        sent, form = id_as_sent(rng, resident.resident_id, resident.birth, _id_form(rng, resident))
        if form != "18":
            quirks.append(f"id_{form}")
    if facility.msh18_empty:
        quirks.append("msh18_empty")
    view = m.PatientView(mrn, family, given, resident.sex, birth, resident.county, resident.town,
                         resident.village, resident.phone, sent, placement)
    return _Visit(facility, view, quirks)


def _choose_facilities(rng: random.Random, resident: Resident) -> list[Facility]:
    hospitals, primary = facilities_for(resident.county)
    pool = list(primary) + list(hospitals)
    count = min(len(pool), rng.choices((1, 2, 3), weights=(0.5, 0.35, 0.15))[0])
    # Primary care first when there is one: most residents are seen there before a hospital.
    chosen = [primary[0]] if primary and rng.random() < 0.6 else []
    rest = [f for f in pool if f not in chosen]
    return chosen + rng.sample(rest, count - len(chosen))


def plan_resident(rng: random.Random, index: int, resident: Resident, counters: Counters) -> list[Event]:
    """All messages about one resident, in the order each facility sends them.

    Deterministic given `rng`'s state and `counters`; identifiers are drawn from `counters`.
    """
    events: list[Event] = []
    t0 = START + timedelta(minutes=index * 7 + rng.randrange(600))
    for n, facility in enumerate(_choose_facilities(rng, resident)):
        visit = _view(rng, resident, facility, facility.mrn(counters.next(facility.code, "mrn")), n == 0)
        start = t0 + timedelta(days=n * rng.randrange(1, 30), minutes=rng.randrange(480))
        events.extend(_visit_events(rng, index, resident, visit, start, counters))
    return events


def _header(rng: random.Random, facility: Facility, when: datetime, counters: Counters,
            visit: str) -> m.Header:
    control_id = f"{facility.code}{counters.next(facility.code, 'msg'):08d}"
    doctor = m.doctor_for(facility, rng.randrange(20))
    return m.Header(facility, when, control_id, visit, doctor, m.pick_department(rng))


def _visit_events(rng: random.Random, index: int, resident: Resident, visit: _Visit, start: datetime,
                  counters: Counters) -> list[Event]:
    f, view = visit.facility, visit.view
    out: list[Event] = []

    def emit(when: datetime, mtype: str, built: Built) -> None:
        header_truth = {"mrn": view.mrn, "id_sent": view.id_sent is not None}
        if view.id_sent is not None:
            header_truth |= {"id_field": view.id_field, "id_value": view.id_sent}
        segs, extra = built
        control_id = segs[0].split("|")[9]
        truth = {"type": mtype, "control_id": control_id, "person": resident.key, **header_truth, **extra}
        if visit.quirks:
            truth["quirks"] = list(visit.quirks)
        out.append(Event(when, index, len(out), f, mtype, segs, truth))

    def header(when: datetime) -> m.Header:
        return _header(rng, f, when, counters, f"V{counters.next(f.code, 'visit'):08d}")

    admit = f.kind == "hospital" and rng.random() < 0.2
    event = "A01" if admit else "A04"
    diag: Diagnosis | None = pick_diagnosis(rng) if admit or rng.random() < 0.8 else None
    h = header(start)
    emit(start, f"ADT^{event}", m.adt_visit(h, view, event, diag))
    age = (start.date() - resident.birth).days // 365
    _follow_ups(rng, f, view, h, age, admit, diag, counters, emit)
    if rng.random() < 0.03:
        _duplicate_and_merge(rng, f, view, start, counters, emit, header)
    if rng.random() < 0.05:
        view.phone = pick_phone(rng)
        when = start + timedelta(days=5)
        h2 = header(when)
        emit(when, "ADT^A08", m.adt_update(h2, view))
    return out


def _follow_ups(rng: random.Random, f: Facility, view: m.PatientView, h: m.Header, age: int, admit: bool,
                diag: Diagnosis | None, counters: Counters, emit: Emit) -> None:
    if "ORU" in f.sends and rng.random() < 0.55:
        panel = rng.choices(("CBC", "BMP", "A1C"), weights=(0.45, 0.35, 0.2))[0]
        hh = _header(rng, f, h.when + timedelta(minutes=30), counters, h.visit)
        emit(hh.when + timedelta(hours=1), "ORU^R01", m.oru(hh, view, panel, rng))
    if "ORM" in f.sends and rng.random() < 0.2:
        accession = f"ACC{f.code[:3]}{counters.next(f.code, 'accession'):07d}"
        hh = _header(rng, f, h.when + timedelta(minutes=20), counters, h.visit)
        emit(hh.when, "ORM^O01", m.orm(hh, view, accession, rng))
    if "VXU" in f.sends and rng.random() < (0.7 if age < 7 else 0.3 if age >= 60 else 0.05):
        vaccine = rng.choice([v for v in VACCINES if v.child == (age < 7)])
        hh = _header(rng, f, h.when + timedelta(minutes=40), counters, h.visit)
        emit(hh.when, "VXU^V04", m.vxu(hh, view, vaccine, f"L{rng.randrange(10**6):06d}"))
    if admit and diag is not None and "MDM" in f.sends:
        document = f"{f.code}-DS-{counters.next(f.code, 'document'):07d}"
        hh = _header(rng, f, h.when + timedelta(days=3), counters, h.visit)
        emit(hh.when, "MDM^T02", m.mdm(hh, view, document, diag))
    if "SIU" in f.sends and rng.random() < 0.15:
        appointment = f"{f.code}-AP-{counters.next(f.code, 'appointment'):07d}"
        hh = _header(rng, f, h.when + timedelta(hours=2), counters, h.visit)
        booked = (h.when + timedelta(days=14)).replace(hour=9, minute=0, second=0)
        emit(hh.when, "SIU^S12", m.siu(hh, view, appointment, booked))
    if "DFT" in f.sends and not admit and rng.random() < 0.3:
        hh = _header(rng, f, h.when + timedelta(minutes=10), counters, h.visit)
        emit(hh.when, "DFT^P03", m.dft(hh, view, rng))


def _duplicate_and_merge(rng: random.Random, f: Facility, view: m.PatientView, start: datetime,
                         counters: Counters, emit: Emit, header: MakeHeader) -> None:
    """Register the resident again under a second MRN (A04), then merge it away (A40)."""
    duplicate = replace(view, mrn=f.mrn(counters.next(f.code, "mrn")))
    when = start + timedelta(days=2)
    h = header(when)
    segs, extra = m.adt_visit(h, duplicate, "A04", None)
    emit(when, "ADT^A04", (segs, {**extra, "mrn": duplicate.mrn, "duplicate_mrn": duplicate.mrn}))
    when = start + timedelta(days=3)
    h = header(when)
    emit(when, "ADT^A40", m.adt_merge(h, view, duplicate.mrn))
