"""Access rules as tables (hie_server.auth.policy): endpoint rules, resident rules, writes, scopes."""

from __future__ import annotations

import pytest

from hie_server.auth import Action, Principal, ResidentFacts, authorize, resident_decision, write_decision
from hie_server.auth.classify import classify, hl7_sending_facilities
from hie_server.auth.policy import resource_visible


def who(
    role: str, facility: str | None = "TTWSY", county: str | None = "441821", scopes: str = ""
) -> Principal:
    return Principal(
        f"sub-{role}", role, "hie-cli", frozenset({role}), frozenset(scopes.split()), facility, county
    )


DOCTOR, VILLAGE, SPECIALIST = (
    who("township-doctor"),
    who("village-doctor", "DWCWSS", "441802"),
    who("specialist", "QYRMYY", "441802"),
)
CDC, CITY_CDC, FEED, ADMIN = (
    who("cdc-staff", None),
    who("cdc-staff", None, "4418"),
    who("clinic-feed"),
    who("hie-admin", None, None),
)

ENDPOINTS = [
    # principal, method, path, allowed, rule
    (DOCTOR, "GET", "Observation", True, "role-read"),
    (DOCTOR, "GET", "Patient/p1/$everything", True, "role-read"),
    (DOCTOR, "DELETE", "Observation/o1", False, "delete-admin-only"),
    (DOCTOR, "GET", "AuditEvent", False, "audit-admin-only"),
    (ADMIN, "GET", "AuditEvent", True, "hie-admin"),
    (ADMIN, "PUT", "AuditEvent/a1", False, "audit-immutable"),
    (ADMIN, "DELETE", "AuditEvent/a1", False, "audit-immutable"),
    (DOCTOR, "GET", "_history", False, "history-admin-only"),
    (DOCTOR, "GET", "Patient/_history", False, "history-admin-only"),
    (DOCTOR, "GET", "Patient/p1/_history", True, "role-read"),
    (DOCTOR, "POST", "Patient/$merge", False, "admin-operation"),
    (DOCTOR, "POST", "Observation", True, "clinician-write"),
    (DOCTOR, "POST", "CodeSystem", False, "reference-data-admin-only"),
    (CDC, "GET", "Condition", True, "role-read"),
    (CDC, "POST", "Condition", False, "cdc-read-only"),
    (CDC, "GET", "Patient/p1/$everything", False, "cdc-no-everything"),
    (FEED, "POST", "Observation", True, "feed-own-facility"),
    (FEED, "PUT", "Observation/o1", True, "feed-own-facility"),
    (SPECIALIST, "GET", "Patient/p1/$everything", True, "role-read"),
    (ADMIN, "DELETE", "Observation/o1", True, "hie-admin"),
    (DOCTOR, "GET", "metadata", True, "public"),
]


@pytest.mark.parametrize(("p", "method", "path", "allowed", "rule"), ENDPOINTS)
def test_endpoint_rules(p, method, path, allowed, rule):
    decision = authorize(p, classify(method, path))
    assert (decision.allowed, decision.rule) == (allowed, rule)


def test_hl7v2_only_feeds():
    assert authorize(FEED, Action("hl7v2")).allowed
    assert (
        authorize(DOCTOR, Action("hl7v2")).rule == "feed-hl7v2"
        and not authorize(DOCTOR, Action("hl7v2")).allowed
    )


SCOPES = [
    ("patient/*.rs", "GET", "Observation", True),
    ("patient/*.rs", "POST", "Observation", False),
    ("user/Observation.rs", "GET", "Condition", False),
    ("user/Observation.rs", "GET", "Observation/o1", True),
    ("user/*.read", "GET", "Observation", True),
    ("user/*.read", "PUT", "Observation/o1", False),
    ("user/*.write", "PUT", "Observation/o1", True),
    ("user/*.cruds", "PUT", "Observation/o1", True),
    ("openid profile", "PUT", "Observation/o1", True),  # no resource scope: roles alone
]


@pytest.mark.parametrize(("scopes", "method", "path", "allowed"), SCOPES)
def test_smart_scopes_narrow_roles(scopes, method, path, allowed):
    decision = authorize(who("township-doctor", scopes=scopes), classify(method, path))
    assert decision.allowed is allowed
    if not allowed:
        assert decision.rule == "smart-scope"


def facts(**kw):
    return ResidentFacts(frozenset({"p1"}), **kw)


RESIDENTS = [
    (DOCTOR, facts(facilities=frozenset({"TTWSY"})), False, True, "doctor-registered-here"),
    (
        DOCTOR,
        facts(facilities=frozenset({"QYRMYY"}), referred_from=frozenset({"TTWSY"})),
        False,
        True,
        "doctor-referred-from",
    ),
    (DOCTOR, facts(facilities=frozenset({"QYRMYY"})), False, False, "doctor-own-facility"),
    (DOCTOR, facts(facilities=frozenset({"QYRMYY"})), True, True, "break-glass"),
    (
        DOCTOR,
        facts(facilities=frozenset({"QYRMYY"}), referred_from=frozenset({"TTWSY"}), opted_out=True),
        False,
        False,
        "consent-opt-out",
    ),
    (
        SPECIALIST,
        facts(consulting=frozenset({"QYRMYY"}), consent_permit=True),
        False,
        True,
        "specialist-referral-consent",
    ),
    (SPECIALIST, facts(consulting=frozenset({"QYRMYY"})), False, False, "specialist-needs-consent"),
    (SPECIALIST, facts(consent_permit=True), False, False, "specialist-needs-referral"),
    (
        SPECIALIST,
        facts(consulting=frozenset({"QYRMYY"}), consent_permit=True, opted_out=True),
        False,
        False,
        "consent-opt-out",
    ),
    (SPECIALIST, facts(), True, True, "break-glass"),
    (CDC, facts(counties=frozenset({"441821"})), False, True, "cdc-county"),
    (CDC, facts(counties=frozenset({"441802"})), False, False, "cdc-county"),
    (CDC, facts(counties=frozenset({"441802"})), True, False, "cdc-county"),  # no break-glass for CDC
    (CITY_CDC, facts(counties=frozenset({"441802"})), False, True, "cdc-county"),
    (FEED, facts(facilities=frozenset({"TTWSY"})), False, True, "feed-own-facility"),
    (FEED, facts(facilities=frozenset({"QYRMYY"})), False, False, "feed-own-facility"),
    (ADMIN, facts(), False, True, "hie-admin"),
]


@pytest.mark.parametrize(("p", "f", "glass", "allowed", "rule"), RESIDENTS)
def test_resident_rules(p, f, glass, allowed, rule):
    decision = resident_decision(p, f, break_glass=glass)
    assert (decision.allowed, decision.rule) == (allowed, rule)
    assert decision.break_glass is (rule == "break-glass")


def test_opt_out_keeps_only_own_facility_data():
    d = resident_decision(DOCTOR, facts(facilities=frozenset({"TTWSY", "QYRMYY"}), opted_out=True))
    assert d.allowed and d.own_facility_only
    own = {"resourceType": "Observation", "meta": {"source": "urn:qyhie:facility:TTWSY"}}
    other = {"resourceType": "Observation", "meta": {"source": "urn:qyhie:facility:QYRMYY"}}
    assert resource_visible(DOCTOR, d, own) and not resource_visible(DOCTOR, d, other)


def test_feed_writes_only_as_own_facility():
    own = {"resourceType": "Observation", "meta": {"source": "urn:qyhie:facility:TTWSY"}}
    other = {"resourceType": "Observation", "meta": {"source": "urn:qyhie:facility:QYRMYY"}}
    unmarked = {"resourceType": "Observation"}
    assert write_decision(FEED, own, None).allowed
    assert write_decision(FEED, other, None).rule == "feed-own-facility"
    assert not write_decision(FEED, unmarked, None).allowed


def test_clinician_write_needs_visible_resident():
    obs = {"resourceType": "Observation", "subject": {"reference": "Patient/p1"}}
    assert write_decision(DOCTOR, obs, facts(facilities=frozenset({"TTWSY"}))).allowed
    assert write_decision(DOCTOR, obs, facts(facilities=frozenset({"QYRMYY"}))).rule == "doctor-own-facility"
    patient = {"resourceType": "Patient", "managingOrganization": {"reference": "Organization/org-QYRMYY"}}
    assert write_decision(DOCTOR, patient, None).rule == "register-own-facility"


def test_msh4_read_from_raw_bytes():
    body = (
        b"MSH|^~\\&|HIS|TTWSY^1.2.3^ISO|HIE|QY|20260901||ADT^A01|1|P|2.5\rPID|1\r"
        b"MSH|^~\\&|HIS|QYRMYY|HIE|QY|20260901||ADT^A01|2|P|2.5\r"
    )
    assert hl7_sending_facilities(body) == ["TTWSY", "QYRMYY"]
    assert hl7_sending_facilities(
        "MSH|^~\\&|HIS|TTWSY|HIE|QY|x||ADT^A01|1|P|2.4|||||||GB18030\rPID|1||||张三".encode("gb18030")
    ) == ["TTWSY"]


CLASSIFY = [
    ("GET", "", "search", None, None),
    ("POST", "", "transaction", None, None),
    ("GET", "Patient", "search", "Patient", None),
    ("POST", "Patient/_search", "search", "Patient", None),
    ("GET", "Patient/1", "read", "Patient", "1"),
    ("GET", "Patient/1/_history/2", "vread", "Patient", "1"),
    ("GET", "Patient/1/$everything", "everything", "Patient", "1"),
    ("POST", "Patient/$match", "operation-read", "Patient", None),
    ("PATCH", "Observation/9", "patch", "Observation", "9"),
    ("PUT", "Observation", "update", "Observation", None),
]


@pytest.mark.parametrize(("method", "path", "interaction", "rtype", "rid"), CLASSIFY)
def test_classify(method, path, interaction, rtype, rid):
    a = classify(method, path)
    assert (a.interaction, a.resource_type, a.resource_id) == (interaction, rtype, rid)
