"""Builders for the synthetic HL7 v2 messages: one function per message type, each
returning the segments (ER7 strings, escaped) and the truth-file fields it adds.

HL7 v2.5 chapters 2 (MSH), 3 (ADT A01/A04/A08/A40), 4 (ORM O01, VXU V04), 6 (DFT P03),
7 (ORU R01), 9 (MDM T02), 10 (SIU S12). PID-3 carries the MRN (`MR`) and, where the facility
puts it there, the 身份证号 with type `NNCHN`; otherwise PID-19 or nowhere.

May import: other `adapters.synth` modules, the standard library.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from adapters.synth.clinical import DEPARTMENTS, FEES, IMAGING, PANELS, Diagnosis, Vaccine, lab_value
from adapters.synth.er7 import dt, dtm, escape, msh, segment
from adapters.synth.facilities import Facility
from adapters.synth.geography import COUNTY_BY_CODE, PROVINCE
from adapters.synth.names import pick_given, pick_surname

Segments = list[str]
Truth = dict[str, Any]


@dataclass(slots=True)
class PatientView:
    """A resident as one facility records them (possibly misspelt, wrong birth date, ...)."""

    mrn: str
    family: str
    given: str
    sex: str
    birth: date
    county: str
    town: str
    village: str
    phone: str
    id_sent: str | None
    id_field: str


@dataclass(frozen=True, slots=True)
class Header:
    """What every message of one event shares: sender, time, control id, visit, doctor."""

    facility: Facility
    when: datetime
    control_id: str
    visit: str
    doctor: tuple[str, str, str]
    department: str


def doctor_for(facility: Facility, index: int) -> tuple[str, str, str]:
    """(id, family, given) of the facility's doctor number `index` (a fixed pool of 20)."""
    rng = random.Random(f"doctor:{facility.code}:{index % 20}")
    family = pick_surname(rng, facility.county)
    return f"D{100 + index % 20}", family, pick_given(rng, "M" if index % 2 else "F")


def pick_department(rng: random.Random) -> str:
    """A department (PV1-3 point of care)."""
    return rng.choice(DEPARTMENTS)


def pid(h: Header, p: PatientView) -> str:
    """PID: PID-3 MRN (+ NNCHN), PID-5 XPN (family^given, type L), PID-7, PID-8, PID-11 XAD
    with the GB/T 2260 county code in XAD-9, PID-13 XTN (XTN-12 unformatted), PID-19."""
    pid3 = f"{escape(p.mrn)}^^^{h.facility.code}^MR"
    if p.id_sent is not None and p.id_field == "PID-3":
        pid3 += f"~{p.id_sent}^^^CHNMPS^NNCHN"
    county = COUNTY_BY_CODE[p.county]
    addr = f"{p.village}^{p.town}^{county.name}^{PROVINCE}^^CHN^H^^{p.county}"
    phone = f"^PRN^CP^^^^^^^^^{p.phone}"
    pid19 = p.id_sent if p.id_sent is not None and p.id_field == "PID-19" else ""
    name = f"{escape(p.family)}^{escape(p.given)}^^^^^L"
    return segment("PID", "1", "", pid3, "", name, "", dt(p.birth), p.sex, "", "", addr, "", phone,
                   "", "", "", "", "", pid19)


def pv1(h: Header, klass: str) -> str:
    """PV1: PV1-2 class (O/I/N, or 门诊/住院 from facilities that send literals), PV1-3,
    PV1-7 attending doctor (XCN), PV1-19 visit number, PV1-44 admit time."""
    if h.facility.class_literal:
        klass = {"O": "门诊", "I": "住院"}.get(klass, klass)
    fields = [""] * 44
    fields[0], fields[1], fields[2] = "1", klass, f"{h.department}^^^{h.facility.code}"
    fields[6] = "^".join(h.doctor)
    fields[18] = h.visit if klass != "N" else ""
    fields[43] = dtm(h.facility, h.when)
    return segment("PV1", *fields)


def adt_visit(h: Header, p: PatientView, event: str, diag: Diagnosis | None) -> tuple[Segments, Truth]:
    """ADT^A01 (admit, PV1-2 I) or ADT^A04 (register, PV1-2 O), with a DG1 when diagnosed."""
    segs = [msh(h.facility, h.when, f"ADT^{event}^ADT_A01", h.control_id),
            segment("EVN", event, dtm(h.facility, h.when)), pid(h, p), pv1(h, "I" if event == "A01" else "O")]
    truth: Truth = {}
    if diag is not None:
        segs.append(segment("DG1", "1", "", f"{diag.code}^{diag.name}^ICD10", "", "", "F", *[""] * 12,
                            dtm(h.facility, h.when)))
        truth = {"diag": diag.code, "notifiable": diag.notifiable}
    return segs, truth


def adt_update(h: Header, p: PatientView) -> tuple[Segments, Truth]:
    """ADT^A08: demographics update (here: a new phone number in PID-13)."""
    segs = [msh(h.facility, h.when, "ADT^A08^ADT_A01", h.control_id),
            segment("EVN", "A08", dtm(h.facility, h.when)), pid(h, p), pv1(h, "N")]
    return segs, {"phone": p.phone}


def adt_merge(h: Header, p: PatientView, old_mrn: str) -> tuple[Segments, Truth]:
    """ADT^A40: merge patient `old_mrn` (MRG-1) into the survivor in PID-3."""
    segs = [msh(h.facility, h.when, "ADT^A40^ADT_A39", h.control_id),
            segment("EVN", "A40", dtm(h.facility, h.when)), pid(h, p),
            segment("MRG", f"{escape(old_mrn)}^^^{h.facility.code}^MR")]
    return segs, {"merged": old_mrn, "into": p.mrn}


def oru(h: Header, p: PatientView, panel: str, rng: random.Random) -> tuple[Segments, Truth]:
    """ORU^R01: one OBR (panel) with one NM OBX per analyte, units, range, abnormal flag."""
    title, analytes = PANELS[panel]
    placer, filler = f"{h.visit}{panel}", f"{h.visit}{panel}F"
    report = h.when + timedelta(hours=1)
    segs = [msh(h.facility, report, "ORU^R01^ORU_R01", h.control_id), pid(h, p), pv1(h, "O"),
            segment("ORC", "RE", placer, filler),
            segment("OBR", "1", placer, filler, f"{panel}^{title}^{h.facility.lab_system}", "", "",
                    dtm(h.facility, h.when), *[""] * 6, dtm(h.facility, report), *[""] * 7,
                    dtm(h.facility, report), "", "", "F")]
    observations = []
    for i, a in enumerate(analytes):
        code = a.code if h.facility.lab_prefix is None else f"{h.facility.lab_prefix}{100 + i}"
        value, flag = lab_value(rng, a)
        low, high = f"{a.low:g}", f"{a.high:g}"
        segs.append(segment("OBX", str(i + 1), "NM", f"{code}^{a.name}^{h.facility.lab_system}", "", value,
                            a.unit, f"{low}-{high}", flag, "", "", "F", "", "", dtm(h.facility, report)))
        observations.append({"code": code, "loinc": a.loinc, "value": value, "unit": a.unit, "flag": flag})
    return segs, {"panel": panel, "observations": observations}


def orm(h: Header, p: PatientView, accession: str, rng: random.Random) -> tuple[Segments, Truth]:
    """ORM^O01: an imaging order; the accession number is ORC-2/OBR-2 and OBR-18/19."""
    code, name, modality = rng.choice(IMAGING)
    segs = [msh(h.facility, h.when, "ORM^O01^ORM_O01", h.control_id), pid(h, p), pv1(h, "O"),
            segment("ORC", "NW", accession, "", "", "SC"),
            segment("OBR", "1", accession, "", f"{code}^{name}^L", "", "", dtm(h.facility, h.when),
                    *[""] * 10, accession, accession, "", "", "", "", modality)]
    return segs, {"accession": accession, "procedure": code}


def vxu(h: Header, p: PatientView, vaccine: Vaccine, lot: str) -> tuple[Segments, Truth]:
    """VXU^V04: one RXA (CVX code, 0.5 mL, lot number in RXA-15)."""
    segs = [msh(h.facility, h.when, "VXU^V04^VXU_V04", h.control_id), pid(h, p),
            segment("ORC", "RE", "", f"{h.visit}IMM"),
            segment("RXA", "0", "1", dtm(h.facility, h.when), dtm(h.facility, h.when),
                    f"{vaccine.cvx}^{vaccine.name}^CVX", "0.5", "mL", *[""] * 7, lot)]
    return segs, {"vaccine": vaccine.label, "cvx": vaccine.cvx}


def mdm(h: Header, p: PatientView, document_id: str, diag: Diagnosis) -> tuple[Segments, Truth]:
    """MDM^T02: TXA (discharge summary, unique document number TXA-12) with the text in an OBX TX."""
    text = escape(f"出院小结：患者{p.family}{p.given}，诊断{diag.name}（{diag.code}），经治疗好转出院。")
    segs = [msh(h.facility, h.when, "MDM^T02^MDM_T02", h.control_id),
            segment("EVN", "T02", dtm(h.facility, h.when)), pid(h, p), pv1(h, "I"),
            segment("TXA", "1", "DS^出院小结", "TX", dtm(h.facility, h.when), "^".join(h.doctor), "", "", "",
                    "", "", "", document_id, "", "", "", "", "AU"),
            segment("OBX", "1", "TX", "18842-5^出院小结^LN", "", text, "", "", "", "", "", "F")]
    return segs, {"document": document_id}


def siu(h: Header, p: PatientView, appointment_id: str, start: datetime) -> tuple[Segments, Truth]:
    """SIU^S12: a booked follow-up (SCH-1 placer id, SCH-11 timing), RGS, AIS, AIP."""
    stamp = dtm(h.facility, start)
    segs = [msh(h.facility, h.when, "SIU^S12^SIU_S12", h.control_id),
            segment("SCH", appointment_id, "", "", "", "", "", "复诊^复诊", "", "20", "min",
                    f"^^20^{stamp}^{dtm(h.facility, start + timedelta(minutes=20))}", *[""] * 13, "Booked"),
            pid(h, p), segment("RGS", "1", "A"),
            segment("AIS", "1", "A", f"{h.department}门诊^{h.department}门诊", stamp),
            segment("AIP", "1", "A", "^".join(h.doctor), "", stamp)]
    return segs, {"appointment": appointment_id, "start": start.isoformat()}


def dft(h: Header, p: PatientView, rng: random.Random) -> tuple[Segments, Truth]:
    """DFT^P03: registration and consultation fees, one FT1 (type CG) each, amounts in CNY."""
    fees = [FEES[0], rng.choice(FEES[1:])]
    segs = [msh(h.facility, h.when, "DFT^P03^DFT_P03", h.control_id),
            segment("EVN", "P03", dtm(h.facility, h.when)), pid(h, p), pv1(h, "O")]
    for i, (code, name, amount) in enumerate(fees):
        segs.append(segment("FT1", str(i + 1), "", "", dtm(h.facility, h.when), "", "CG", f"{code}^{name}^L",
                            "", "", "1", f"{amount}&CNY", "", "", "", "", "", "", "", "", "^".join(h.doctor)))
    return segs, {"charges": [f[0] for f in fees]}
