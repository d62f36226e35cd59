"""`GET /fhir/metadata`: generated CapabilityStatement and readiness; OpenAPI docs."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient

from ehr_store import MemoryStore, Unprocessable
from hie_server.app import FhirModule, create_app
from hie_server.capability import FhirOperation


@pytest.fixture
def modules() -> list[FhirModule]:
    router = APIRouter()

    @router.get("/Patient/{id}/$everything")
    async def everything(id: str) -> dict[str, str]:
        return {"resourceType": "Bundle", "type": "searchset"}

    op = FhirOperation(
        "everything", "http://hl7.org/fhir/OperationDefinition/Patient-everything", ("Patient",)
    )
    return [FhirModule(router, [op])]


def test_capability_statement_content(client: TestClient) -> None:
    r = client.get("/fhir/metadata")
    assert r.status_code == 200
    cs = r.json()
    assert cs["resourceType"] == "CapabilityStatement"
    assert cs["fhirVersion"] == "4.3.0" and cs["kind"] == "instance"
    assert "application/fhir+json" in cs["format"]
    rest = cs["rest"][0]
    assert {i["code"] for i in rest["interaction"]} == {
        "transaction",
        "batch",
        "search-system",
        "history-system",
    }
    by_type = {r["type"]: r for r in rest["resource"]}
    for t in ("Patient", "Observation", "Encounter", "Appointment", "ImagingStudy", "ConceptMap"):
        assert t in by_type
    patient = by_type["Patient"]
    assert {"read", "vread", "update", "patch", "delete", "create", "search-type"} <= {
        i["code"] for i in patient["interaction"]
    }
    params = {p["name"]: p for p in patient["searchParam"]}
    assert params["identifier"]["type"] == "token"
    assert params["birthdate"]["type"] == "date"
    assert params["identifier"]["definition"].startswith("http://hl7.org/fhir/SearchParameter/")
    assert patient["operation"] == [
        {"name": "everything", "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything"}
    ]
    assert "operation" not in by_type["Observation"]


def test_module_route_reaches_before_generic_routes(client: TestClient) -> None:
    assert client.get("/fhir/Patient/p1/$everything").json()["type"] == "searchset"


class _OldSchemaStore(MemoryStore):
    """A real MemoryStore whose schema check reports an old schema (as SqlStore would)."""

    def check_schema(self) -> None:
        raise Unprocessable("database schema is at revision 0001, not head; run `hie db upgrade`")


def test_metadata_is_503_until_the_schema_is_current(settings: Any) -> None:
    with TestClient(create_app(settings, _OldSchemaStore())) as client:
        r = client.get("/fhir/metadata")
        assert r.status_code == 503
        assert "hie db upgrade" in r.json()["issue"][0]["diagnostics"]


def test_openapi_docs(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    assert "/docs-assets/swagger-ui-bundle.js" in page.text and "cdn." not in page.text  # works offline
    asset = client.get("/docs-assets/swagger-ui-bundle.js")
    assert asset.status_code == 200 and len(asset.content) > 100_000
    paths = client.get("/openapi.json").json()["paths"]
    assert "/fhir/{resource_type}/{id}" in paths


def test_no_security_element_without_an_identity_provider(client: TestClient) -> None:
    assert "security" not in client.get("/fhir/metadata").json()["rest"][0]


def test_security_describes_smart_on_fhir_when_an_issuer_is_configured(settings: Any) -> None:
    issuer = "https://sso.example.cn/realms/qingyuan"
    secured = settings.model_copy(update={"auth": settings.auth.model_copy(update={"issuer": issuer})})
    with TestClient(create_app(secured, MemoryStore())) as client:
        r = client.get("/fhir/metadata")  # public even with sign-in required
        assert r.status_code == 200
        security = r.json()["rest"][0]["security"]
        assert security["service"][0]["coding"] == [
            {
                "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                "code": "SMART-on-FHIR",
            }
        ]
        assert issuer in security["description"]
        [oauth] = security["extension"]
        assert oauth["url"] == "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
        uris = {e["url"]: e["valueUri"] for e in oauth["extension"]}
        oidc = f"{issuer}/protocol/openid-connect"
        assert uris == {
            "authorize": f"{oidc}/auth",
            "token": f"{oidc}/token",
            "introspect": f"{oidc}/token/introspect",
            "revoke": f"{oidc}/revoke",
        }
        assert client.get("/fhir/Patient").status_code == 401  # the statement says what is enforced
