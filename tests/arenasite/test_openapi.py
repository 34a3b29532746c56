"""The OpenAPI schema and the interactive docs page that reads it."""

import pytest
import yaml
from drf_spectacular.validation import validate_schema

from ..conftest import make_model

pytestmark = pytest.mark.django_db

ACTIONS = ["submit", "withdraw", "request-retirement", "admit", "reject", "publish", "retire"]


@pytest.fixture
def schema(client):
    response = client.get("/api/schema/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.oai.openapi")
    return yaml.safe_load(response.content)


def test_the_schema_is_a_valid_openapi_document(schema):
    validate_schema(schema)  # raises on anything the OpenAPI 3 specification does not allow
    assert schema["openapi"].startswith("3.")
    assert schema["info"]["title"] == "Arenasite API"


def test_the_schema_describes_every_v1_endpoint(schema):
    paths = schema["paths"]
    assert "/api/v1/models/" in paths
    assert set(paths["/api/v1/models/"]) >= {"get", "post"}
    assert set(paths["/api/v1/models/{id}/"]) >= {"get", "patch"}
    assert "put" not in paths["/api/v1/models/{id}/"]
    assert "get" in paths["/api/v1/models/{id}/events/"]
    id_parameter = {"in": "path", "name": "id", "schema": {"type": "integer"}, "required": True}
    assert id_parameter in paths["/api/v1/models/{id}/"]["get"]["parameters"]
    for action in ACTIONS:
        operation = paths[f"/api/v1/models/{{id}}/{action}/"]["post"]
        assert set(operation["responses"]) >= {"200", "403", "404", "409"}


def test_the_schema_offers_bearer_tokens_and_keeps_the_endpoint_key_write_only(schema):
    assert schema["components"]["securitySchemes"]["ApiToken"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "arena_<prefix>_<secret>",
    }
    components = schema["components"]["schemas"]
    # The key is sent (request body), never read back; only whether one is set is read.
    assert components["OwnArenaModelRequest"]["properties"]["endpoint_api_key"]["writeOnly"] is True
    assert "endpoint_api_key" not in components["OwnArenaModel"]["properties"]
    assert components["OwnArenaModel"]["properties"]["endpoint_api_key_set"]["readOnly"] is True


def test_the_schema_is_also_served_as_json(client):
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    assert "/api/v1/models/" in response.json()["paths"]


def test_the_docs_page_loads_without_the_network(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "swagger-ui" in page.lower()
    assert "cdn.jsdelivr.net" not in page  # the sidecar serves Swagger UI from our own static files
    # No inline script (the Content-Security-Policy forbids them): the start-up script is a file.
    assert "<script>" not in page
    script = client.get("/api/docs/", {"script": ""})
    assert script.status_code == 200
    assert script["Content-Type"].startswith("application/javascript")
    assert "/api/schema/" in script.content.decode()


def _component(schema, ref: str) -> dict:
    return schema["components"]["schemas"][ref.rsplit("/", 1)[1]]


def test_creating_a_model_asks_only_for_what_the_client_sets(schema):
    operation = schema["paths"]["/api/v1/models/"]["post"]
    request = _component(schema, operation["requestBody"]["content"]["application/json"]["schema"]["$ref"])
    response = _component(schema, operation["responses"]["201"]["content"]["application/json"]["schema"]["$ref"])
    read_only = {name for name, field in response["properties"].items() if field.get("readOnly")}
    assert {"id", "status", "codename", "votes_counted", "submitted_at"} <= read_only
    assert not read_only & set(request["properties"])
    assert not [name for name, field in request["properties"].items() if field.get("readOnly")]
    assert request["required"] == ["name"]


def test_no_request_body_of_any_operation_has_a_read_only_field(schema):
    offenders = []
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            for content in operation.get("requestBody", {}).get("content", {}).values():
                ref = content["schema"].get("$ref")
                properties = _component(schema, ref).get("properties", {}) if ref else {}
                offenders += [f"{method} {path}: {name}" for name, f in properties.items() if f.get("readOnly")]
    assert not offenders


def _concrete(path: str, model_id: int) -> str:
    return path.replace("{id}", str(model_id)).replace("{battle_id}", "x")


def test_every_operation_an_anonymous_caller_gets_401_from_declares_it_and_no_other_does(schema, client, provider_a):
    """Asked of the running API rather than of the views' classes: an anonymous call of each
    operation, and the schema's word on it."""
    model = make_model(provider_a, "listed")  # so /models/{id}/... exists for the public reads
    mismatches, declared = [], 0
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            response = getattr(client, method)(_concrete(path, model.pk), content_type="application/json")
            says = "401" in operation["responses"]
            declared += says
            if (response.status_code == 401) != says:
                mismatches.append(f"{method.upper()} {path}: answered {response.status_code}, declares 401: {says}")
            if response.status_code == 401:
                assert set(response.json()) == {"detail"}
                assert response["WWW-Authenticate"].startswith("Bearer")
    assert not mismatches, "\n".join(mismatches)
    assert declared >= 18


def test_the_401_carries_the_projects_error_body(schema):
    operation = schema["paths"]["/api/v1/models/"]["post"]
    unauthorised = operation["responses"]["401"]
    ref = unauthorised["content"]["application/json"]["schema"]["$ref"]
    error = _component(schema, ref)  # the one error body every operation refers to
    assert ref == "#/components/schemas/Error"
    assert (error["type"], error["properties"]["detail"]["type"], error["required"]) == ("object", "string", ["detail"])
    assert "WWW-Authenticate" in unauthorised["headers"]
    # Public reads declare none: nothing about them needs credentials.
    assert "401" not in schema["paths"]["/api/v1/models/"]["get"]["responses"]
    assert "401" not in schema["paths"]["/api/v1/leaderboard/"]["get"]["responses"]
