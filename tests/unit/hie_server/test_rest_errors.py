"""Every error is an OperationOutcome with the right status (DESIGN.md "Errors")."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient

from ehr_store import (
    Conflict,
    DomainError,
    Forbidden,
    Gone,
    InvalidInput,
    NotFound,
    NotSupported,
    PreconditionFailed,
    TooCostly,
    Unauthenticated,
    Unavailable,
    Unprocessable,
    VersionConflict,
)
from hie_server.app import FhirModule
from hie_server.errors import (
    MethodNotAllowed,
    NotAcceptable,
    PayloadTooLarge,
    UnsupportedMediaType,
    status_for,
)

FHIR = "application/fhir+json"


def assert_outcome(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(FHIR)
    body: dict[str, Any] = response.json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"] and body["issue"][0]["diagnostics"]
    return body


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (InvalidInput("x"), 400),
        (Unauthenticated("x"), 401),
        (Forbidden("x"), 403),
        (NotFound("x"), 404),
        (NotSupported("x"), 400),
        (MethodNotAllowed("x"), 405),
        (NotAcceptable("x"), 406),
        (Conflict("x"), 409),
        (Gone("x"), 410),
        (PreconditionFailed("x"), 412),
        (VersionConflict("x"), 412),
        (TooCostly("x"), 400),
        (PayloadTooLarge("x"), 413),
        (UnsupportedMediaType("x"), 415),
        (Unprocessable("x"), 422),
        (Unavailable("x"), 503),
        (DomainError("x"), 500),
    ],
)
def test_status_table_follows_the_mro(error: DomainError, status: int) -> None:
    assert status_for(error) == status


def _failing_module() -> FhirModule:
    router = APIRouter()

    @router.get("/_test/conflict")
    async def conflict() -> None:
        raise Conflict("slot 3 is taken")

    @router.get("/_test/crash")
    async def crash() -> None:
        raise RuntimeError("secret-connection-string password=hunter2")

    @router.get("/_test/typed")
    async def typed(count: int) -> dict[str, int]:
        return {"count": count}

    return FhirModule(router)


@pytest.fixture
def modules() -> list[FhirModule]:
    return [_failing_module()]


def test_conflict_409_from_a_module_route(client: TestClient) -> None:
    body = assert_outcome(client.get("/fhir/_test/conflict"), 409)
    assert body["issue"][0]["code"] == "conflict"


def test_unexpected_error_is_500_without_exception_text(client: TestClient) -> None:
    r = client.get("/fhir/_test/crash", headers={"X-Request-Id": "req-42"})
    body = assert_outcome(r, 500)
    assert "hunter2" not in r.text and "RuntimeError" not in r.text
    assert "req-42" in body["issue"][0]["diagnostics"]


def test_request_validation_one_issue_per_error_with_expression(client: TestClient) -> None:
    body = assert_outcome(client.get("/fhir/_test/typed?count=many"), 400)
    assert body["issue"][0]["expression"] == ["query.count"]


def test_unparseable_json_is_400(client: TestClient) -> None:
    body = assert_outcome(
        client.post("/fhir/Patient", content=b"{not json", headers={"content-type": FHIR}), 400
    )
    assert "JSON" in body["issue"][0]["diagnostics"]


def test_wrong_resource_type_and_id_mismatch_are_400(client: TestClient, patient: Any) -> None:
    assert_outcome(client.post("/fhir/Observation", json=patient()), 400)
    assert_outcome(client.put("/fhir/Patient/a1", json=patient(id="b2")), 400)
    assert_outcome(client.put("/fhir/Patient/a1", json=patient()), 400)
    assert_outcome(client.post("/fhir/Patient", json=[1, 2]), 400)
    assert_outcome(
        client.post("/fhir/Patient", json={"resourceType": "Patient", "birthDate": "1980-13-45"}), 400
    )


def test_unknown_type_id_and_route_are_404(client: TestClient) -> None:
    assert_outcome(client.get("/fhir/Spaceship/1"), 404)
    assert_outcome(client.get("/fhir/HumanName"), 404)
    assert_outcome(client.get("/fhir/Patient/does-not-exist"), 404)
    assert_outcome(client.get("/nowhere"), 404)
    assert_outcome(client.get("/fhir/Patient/bad id!"), 400)


def test_method_not_allowed_is_405(client: TestClient) -> None:
    assert_outcome(client.post("/fhir/Patient/123", json={}), 405)


def test_body_too_large_is_413(client: TestClient, settings: Any) -> None:
    big = {"resourceType": "Patient", "name": [{"text": "x" * settings.http.max_body_bytes}]}
    assert_outcome(client.post("/fhir/Patient", json=big), 413)

    def chunks() -> Any:
        yield b'{"resourceType":"Patient","name":[{"text":"'
        for _ in range(settings.http.max_body_bytes // 1000 + 1):
            yield b"y" * 1000
        yield b'"}]}'

    assert_outcome(client.post("/fhir/Patient", content=chunks(), headers={"content-type": FHIR}), 413)


def test_xml_is_refused_with_406_and_415(client: TestClient, patient: Any) -> None:
    body = assert_outcome(client.get("/fhir/Patient/x", headers={"Accept": "application/fhir+xml"}), 406)
    assert "application/fhir+json" in body["issue"][0]["diagnostics"]
    assert_outcome(client.get("/fhir/metadata?_format=xml"), 406)
    xml = b'<Patient xmlns="http://hl7.org/fhir"/>'
    assert_outcome(
        client.post("/fhir/Patient", content=xml, headers={"content-type": "application/fhir+xml"}), 415
    )


def test_stale_if_match_412_and_gone_410(client: TestClient, patient: Any) -> None:
    pid = client.post("/fhir/Patient", json=patient()).json()["id"]
    assert_outcome(
        client.put(f"/fhir/Patient/{pid}", json=patient(id=pid), headers={"If-Match": 'W/"5"'}), 412
    )
    assert_outcome(client.delete(f"/fhir/Patient/{pid}", headers={"If-Match": 'W/"5"'}), 412)
    client.delete(f"/fhir/Patient/{pid}")
    assert_outcome(client.get(f"/fhir/Patient/{pid}"), 410)


def test_unprocessable_patch_is_422(client: TestClient, patient: Any) -> None:
    pid = client.post("/fhir/Patient", json=patient()).json()["id"]
    ops = b'[{"op": "remove", "path": "/telecom/0"}]'
    r = client.patch(
        f"/fhir/Patient/{pid}", content=ops, headers={"content-type": "application/json-patch+json"}
    )
    assert_outcome(r, 422)


@pytest.mark.parametrize("levels", [60, 500, 1000, 1400])  # 1400: 63 KB, under the 64 KiB limit
def test_deeply_nested_json_is_400_not_500(client: TestClient, levels: int) -> None:
    ext = '{"url":"http://example.org/x",'
    body = (
        '{"resourceType":"Patient","extension":['
        + (ext + '"extension":[') * levels
        + ext + '"valueString":"x"}'
        + "]}" * levels
        + "]}"
    )
    for response in (
        client.post("/fhir/Patient", content=body, headers={"content-type": FHIR}),
        client.put("/fhir/Patient/deep", content=body.replace("{", '{"id":"deep",', 1),
                   headers={"content-type": FHIR}),
    ):
        outcome = assert_outcome(response, 400)
        assert "nested too deeply" in outcome["issue"][0]["diagnostics"]
    assert client.get("/fhir/Patient/deep").status_code == 404
