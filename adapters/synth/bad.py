"""Malformed messages for the `BAD` folder of a synthetic feed, one per failure kind, with the
outcome the exchange must produce (HL7 v2.5 §2.9 acknowledgements, Table 0357 error codes).

May import: the standard library only.
"""

from __future__ import annotations

from typing import Any

_HEADER = "MSH|^~\\&|HIS|QYRMYY|QYHIE|QYWJJ|20261001080000+0800||{type}|{control}|P|{version}"
REJECT = "reject: AE/AR NAK with ERR, kept for replay"
ACCEPT_FLAGGED = "accept, identifier flagged and not used for linking"


def _msg(*segments: str) -> bytes:
    return "".join(s + "\r" for s in segments).encode("utf-8")


def bad_messages(prefix: str) -> list[tuple[str, bytes, dict[str, Any]]]:
    """(file name, bytes, truth fields) for each malformed example; control ids `<prefix>BADn`.

    The one with a wrong 身份证号 check character is accepted (identifier flagged); every
    other one must be answered with AE or AR and kept in the error queue.
    """
    def head(n: int, mtype: str = "ADT^A04^ADT_A01", version: str = "2.5") -> str:
        return _HEADER.format(type=mtype, control=f"{prefix}BAD{n}", version=version)

    rows: list[tuple[str, bytes, str, str]] = [
        ("no MSH", _msg("PID|1||X1^^^QYRMYY^MR||测试^甲||19800101|M"), REJECT, ""),
        ("MSH-9 empty", _msg(head(2, mtype=""), "PID|1||X2^^^QYRMYY^MR"), REJECT, f"{prefix}BAD2"),
        ("unknown version", _msg(head(3, version="9.9"), "PID|1||X3^^^QYRMYY^MR"), REJECT, f"{prefix}BAD3"),
        ("bad birth date",
         _msg(head(4), "EVN|A04|20261001080000", "PID|1||X4^^^QYRMYY^MR||测试^乙||19801345|F", "PV1|1|O"),
         REJECT, f"{prefix}BAD4"),
        ("bad resident id check digit",
         _msg(head(5), "EVN|A04|20261001080000",
              "PID|1||X5^^^QYRMYY^MR~441802198001010010^^^CHNMPS^NNCHN||测试^丙||19800101|M", "PV1|1|O"),
         ACCEPT_FLAGGED, f"{prefix}BAD5"),
        ("declared GB18030, bytes not decodable",
         (head(6) + "|||AL|NE|CHN|GB 18030-2000\rPID|1||X6^^^QYRMYY^MR||").encode("ascii")
         + b"\x81\x20\xff\xfe" + b"\r", REJECT, f"{prefix}BAD6"),
        ("ORU without PID", _msg(head(7, mtype="ORU^R01^ORU_R01"), "OBR|1|A|B|HGB^血红蛋白^L",
                                 "OBX|1|NM|HGB^血红蛋白^L||abc|g/L|||||F"), REJECT, f"{prefix}BAD7"),
        ("segment id not three characters", _msg(head(8), "EVN|A04|20261001080000",
                                                 "PID|1||X8^^^QYRMYY^MR||测试^丁||19800101|M", "PV|1|O"),
         REJECT, f"{prefix}BAD8"),
    ]
    out = []
    for n, (why, data, expect, control) in enumerate(rows, start=1):
        truth: dict[str, Any] = {"type": "malformed", "why": why, "expect": expect}
        if control:
            truth["control_id"] = control
        out.append((f"bad{n:02d}.hl7", data, truth))
    return out
