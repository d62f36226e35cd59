"""Constructed HL7 v2 messages for the families the sample feed lacks (synthetic data only)."""

from __future__ import annotations

HDR = (
    "MSH|^~\\&|HIS|QYRMYY^清远市人民医院|QYHIE|QYWJJ|20261002093000+0800||{type}|{cid}|P|2.5|||||CHN|"
    "UNICODE UTF-8"
)
PID = (
    "PID|1||QY0200001^^^QYRMYY^MR~441802199001011239^^^CHNMPS^NNCHN||林^小红^^^^^L||19900101|F|||"
    "东门村^石角镇^清城区^广东省^511500^CHN^H^^441802||^PRN^CP^^^^^^^^^13800001234~^NET^Internet^lin@example.cn|"
    "||||YB44180200001^^^CHNYB"
)
PV1 = (
    "PV1|1|住院|内科^301^2^QYRMYY||||D101^王^医生||||||||||||V900001|||||||||||||||||||||||||"
    "20261002080000+0800"
)


def msg(type_: str, cid: str, *segments: str) -> str:
    return "\r".join([HDR.format(type=type_, cid=cid), *segments]) + "\r"


ADT_A01_FULL = msg(
    "ADT^A01^ADT_A01",
    "M1001",
    "EVN|A01|20261002093000+0800",
    PID,
    PV1,
    "NK1|1|林^大山|FTH^父亲^HL70063|东门村^石角镇^清城区^广东省|^PRN^PH^^^^^^^^^13800005678",
    "AL1|1|DA|PCN^青霉素^L|SV|皮疹~呼吸困难|20200101",
    "DG1|1||J18.9^肺炎^ICD10|||A||||||||||D101^王^医生",
    "IN1|1|CHNYB01^城乡居民医保^L|YB|清远市医疗保障局||||||||20260101|20261231|||||||||||||||||||||||YB44180200001",
    "ZPI|1|local extension kept",
)
ORU_VALUE_TYPES = msg(
    "ORU^R01^ORU_R01",
    "M1002",
    PID,
    PV1,
    "OBR|1|P77|F77|BIO^生化^L|||20261002090000+0800|||||||||||||||20261002093000+0800|||C",
    "OBX|1|SN|GLU^葡萄糖^L||<^3.9|mmol/L|3.9-6.1|L|||F",
    "OBX|2|SN|TITER^滴度^L||^1^:^128||||||F",
    "OBX|3|CE|HBSAG^乙肝表面抗原^L||NEG^阴性^L||||||F",
    "OBX|4|ST|NOTE^备注^L||溶血\\T\\脂血||||||F",
    "NTE|1||标本轻度溶血",
    "OBX|5|DT|LMP^末次月经^L||20260915||||||F",
    "OBX|6|NM|K^钾^L||4.20|mmol/L|3.5-5.3|N|||P",
    "OBR|2|P78|F78|CBC^血常规^L|||20261002090000+0800|||||||||||||||20261002093000+0800|||F",
    "OBX|1|NM|HGB^血红蛋白^L||135|g/L|115-150|N|||F",
)
OML_O21 = msg(
    "OML^O21^OML_O21",
    "M1003",
    PID,
    PV1,
    "ORC|NW|PL9001|FL9001||SC|||||||D101^王^医生",
    "OBR|1|PL9001|FL9001|CT-HEAD^头颅CT平扫^L|||20261002100000+0800|||||||||||ACC9001||||||CT",
)
MDM_T02 = msg(
    "MDM^T02^MDM_T02",
    "M1004",
    "EVN|T02|20261002093000+0800",
    PID,
    PV1,
    "TXA|1|DS^出院小结^L|TX|20261002093000+0800|D101^王^医生||||D101^王^医生|||DOC77||||AU",
    "OBX|1|TX|DS^出院小结^L||患者好转出院。\\.br\\注意休息。||||||F",
)
SIU_S12 = msg(
    "SIU^S12^SIU_S12",
    "M1005",
    "SCH|APT55|APT55F|||||FU^复诊^L|NORMAL^常规^HL70276|||^^^20261010090000+0800^20261010091500+0800",
    PID,
    "AIS|1||GP^全科门诊^L",
    "AIP|1||D101^王^医生",
    "AIL|1||全科诊室1",
)
SIU_S15 = SIU_S12.replace("SIU^S12^SIU_S12", "SIU^S15^SIU_S12").replace("|M1005|", "|M1006|")
DFT_P03 = msg(
    "DFT^P03^DFT_P03",
    "M1007",
    "EVN|P03|20261002093000+0800",
    PID,
    PV1,
    "FT1|1|T8001||20261002093000+0800||CG|GH^挂号费^L|||1|12.00^CNY",
    "FT1|2|T8002||20261002093500+0800||CG|ZC^诊查费^L|||1|25.50^CNY",
)
ADT_A08_NULL = msg(
    "ADT^A08^ADT_A01",
    "M1008",
    "EVN|A08|20261003093000+0800",
    'PID|1||QY0200001^^^QYRMYY^MR||林^小红^^^^^L||19900101|F|||""||',
    "PV1|1|N",
)
