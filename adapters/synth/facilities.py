"""The synthetic sending facilities: county hospitals, township health centres (卫生院) and
village clinics (卫生室), each with its own MRN scheme, charset, terminator and quirks.

Facility codes appear as MSH-4 (HD.1) and as the assigning authority of PID-3 MRNs.

May import: the standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["hospital", "township", "village"]
Charset = Literal["utf-8", "gb18030"]
IdPlacement = Literal["PID-3", "PID-19", "none"]

MSH18_BY_CHARSET: dict[str, str] = {"utf-8": "UNICODE UTF-8", "gb18030": "GB 18030-2000"}
"""MSH-18 character set values (HL7 Table 0211) the facilities declare."""

TERMINATORS: dict[str, bytes] = {"CR": b"\r", "LF": b"\n", "CRLF": b"\r\n"}


@dataclass(frozen=True, slots=True)
class Facility:
    """One sending facility and how its interface engine writes HL7 v2.

    `mrn_format` is a `str.format` pattern over `n` (a per-facility sequence number);
    `id_placement` weights where the 身份证号 goes (PID-3 with type NNCHN, PID-19, or absent);
    `msh18_empty`: MSH-18 left empty although the bytes are `charset`; `ts_zone`: timestamps
    carry `+0800`; `ts_minutes`: timestamps to the minute only; `class_literal`: PV1-2 sent as
    门诊/住院 instead of O/I; `lab_prefix`: local lab codes are `<prefix><n>` instead of `HGB`;
    `ack_modes`: MSH-15/MSH-16 (both empty: original acknowledgement mode, HL7 v2.5 §2.9.2;
    otherwise enhanced mode, §2.9.3).
    """

    code: str
    name: str
    kind: Kind
    county: str
    charset: Charset
    terminator: Literal["CR", "LF", "CRLF"]
    version: str
    mrn_format: str
    id_placement: dict[IdPlacement, float]
    msh18_empty: bool = False
    ts_zone: bool = True
    ts_minutes: bool = False
    class_literal: bool = False
    lab_prefix: str | None = None
    lab_system: str = "L"
    sends: frozenset[str] = field(default_factory=frozenset)
    ack_modes: tuple[str, str] = ("", "")

    @property
    def msh18(self) -> str:
        """MSH-18 as this facility sends it (empty for `msh18_empty` facilities)."""
        return "" if self.msh18_empty else MSH18_BY_CHARSET[self.charset]

    def mrn(self, n: int) -> str:
        """The facility's MRN for sequence number `n` (>= 1)."""
        return self.mrn_format.format(n=n)


_ALL = frozenset({"ADT", "ORU", "ORM", "VXU", "MDM", "SIU", "DFT"})
_TOWNSHIP = frozenset({"ADT", "ORU", "VXU", "DFT", "SIU"})
_VILLAGE = frozenset({"ADT", "VXU", "DFT"})

FACILITIES: tuple[Facility, ...] = (
    Facility("QYRMYY", "清远市人民医院", "hospital", "441802", "utf-8", "CR", "2.5", "QY{n:07d}",
             {"PID-3": 0.7, "PID-19": 0.0, "none": 0.3}, sends=_ALL, ack_modes=("AL", "NE")),
    Facility("YDRMYY", "英德市人民医院", "hospital", "441881", "gb18030", "CR", "2.4", "88{n:08d}",
             {"PID-3": 0.5, "PID-19": 0.2, "none": 0.3}, lab_prefix="YD", lab_system="YDLIS", sends=_ALL),
    Facility("LZRMYY", "连州市人民医院", "hospital", "441882", "utf-8", "CRLF", "2.4", "LZ-{n:06d}",
             {"PID-3": 0.2, "PID-19": 0.6, "none": 0.2}, sends=_ALL, ack_modes=("AL", "AL")),
    Facility("YSXRMYY", "阳山县人民医院", "hospital", "441823", "gb18030", "CR", "2.4", "YS{n:06d}",
             {"PID-3": 0.6, "PID-19": 0.0, "none": 0.4}, msh18_empty=True, ts_zone=False, sends=_ALL),
    Facility("FGXRMYY", "佛冈县人民医院", "hospital", "441821", "utf-8", "LF", "2.3.1", "FG{n:07d}",
             {"PID-3": 0.5, "PID-19": 0.3, "none": 0.2}, lab_prefix="L", lab_system="FGLIS", sends=_ALL),
    Facility("TTWSY", "佛冈县汤塘镇卫生院", "township", "441821", "utf-8", "CR", "2.5", "TT{n:07d}",
             {"PID-3": 0.3, "PID-19": 0.0, "none": 0.7}, sends=_TOWNSHIP, ack_modes=("AL", "NE")),
    Facility("LJKWSY", "英德市连江口镇卫生院", "township", "441881", "gb18030", "CR", "2.4", "LJK{n:06d}",
             {"PID-3": 0.6, "PID-19": 0.0, "none": 0.4}, ts_zone=False, ts_minutes=True, sends=_TOWNSHIP),
    Facility("SJWSY", "连南瑶族自治县三江镇卫生院", "township", "441826", "gb18030", "CR", "2.4", "SJ{n:07d}",
             {"PID-3": 0.0, "PID-19": 0.7, "none": 0.3}, sends=_TOWNSHIP),
    Facility("JTWSY", "连山壮族瑶族自治县吉田镇卫生院", "township", "441825", "utf-8", "LF", "2.3.1",
             "JT{n:07d}",
             {"PID-3": 0.5, "PID-19": 0.0, "none": 0.5}, sends=_TOWNSHIP),
    Facility("THZWSY", "清新区太和镇卫生院", "township", "441803", "utf-8", "CRLF", "2.4", "TH{n:06d}",
             {"PID-3": 0.4, "PID-19": 0.2, "none": 0.4}, sends=_TOWNSHIP),
    Facility("DWCWSS", "清城区石角镇东围村卫生室", "village", "441802", "utf-8", "LF", "2.4", "{n:05d}",
             {"PID-3": 0.1, "PID-19": 0.0, "none": 0.9}, msh18_empty=True, class_literal=True,
             sends=_VILLAGE),
    Facility("XLCWSS", "阳山县黎埠镇新岭村卫生室", "village", "441823", "gb18030", "CRLF", "2.3.1",
             "XL{n:04d}",
             {"PID-3": 0.0, "PID-19": 0.2, "none": 0.8}, ts_zone=False, class_literal=True, sends=_VILLAGE),
)

FACILITY_BY_CODE: dict[str, Facility] = {f.code: f for f in FACILITIES}


def facilities_for(county: str) -> tuple[tuple[Facility, ...], tuple[Facility, ...]]:
    """(hospitals, primary-care facilities) a resident of `county` plausibly visits.

    The city hospital QYRMYY serves every county; a county's own hospital and its township
    and village facilities serve its residents (none in a county without one in the table).
    """
    hospitals = tuple(f for f in FACILITIES if f.kind == "hospital" and f.county in (county, "441802"))
    primary = tuple(f for f in FACILITIES if f.kind != "hospital" and f.county == county)
    return hospitals, primary


def describe(facility: Facility) -> dict[str, object]:
    """A JSON-able description of the facility (written to `facilities.json` for operators)."""
    return {
        "code": facility.code,
        "name": facility.name,
        "kind": facility.kind,
        "county": facility.county,
        "charset": facility.charset,
        "msh18": facility.msh18,
        "terminator": facility.terminator,
        "version": facility.version,
        "ack_modes": list(facility.ack_modes),
        "timestamps_with_zone": facility.ts_zone,
        "mrn_example": facility.mrn(1),
        "lab_code_system": facility.lab_system,
    }
