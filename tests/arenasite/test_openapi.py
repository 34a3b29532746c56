"""The OpenAPI schema and the interactive docs page that reads it."""

import pytest
import yaml
from drf_spectacular.validation import validate_schema

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
    own = schema["components"]["schemas"]["OwnArenaModel"]["properties"]
    assert own["endpoint_api_key"]["writeOnly"] is True
    assert own["endpoint_api_key_set"]["readOnly"] is True


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
