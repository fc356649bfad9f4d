"""Spec 004's webhook endpoints: envelopes, one per account (409), soft delete, bad input →
400 VALIDATION_ERROR with nothing changed, account scoping, secrets, the resend routes."""

import pytest
from rest_framework.test import APIClient

from webhooks.catalogue import ALL_EVENTS
from webhooks.models import Endpoint

PUBLIC_URL = "https://93.184.215.14/webhooks/herald"


def client_for(keys) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {keys.live_key}")
    return client


@pytest.fixture
def client(keys) -> APIClient:
    return client_for(keys)


def create(client, **fields):
    body = {"url": PUBLIC_URL, "enabled_events": ["delivery.sent", "delivery.failed"],
            "description": "Production webhook", **fields}
    return client.post("/v1/webhooks", body, format="json")


def test_create_returns_the_spec_envelope_with_the_secret_once(client):
    response = create(client)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["success"] is True
    webhook = body["webhook"]
    assert set(webhook) >= {"uuid", "url", "enabled_events", "is_active", "signing_secret",
                            "created_at"}
    assert webhook["url"] == PUBLIC_URL
    assert webhook["enabled_events"] == ["delivery.sent", "delivery.failed"]
    assert webhook["is_active"] is True
    assert webhook["signing_secret"].startswith("whsec_")
    listed = client.get("/v1/webhooks").json()
    assert listed["success"] is True
    assert listed["webhook"]["uuid"] == webhook["uuid"]
    assert "signing_secret" not in listed["webhook"]
    endpoint = Endpoint.objects.get(id=webhook["uuid"])
    assert webhook["signing_secret"] not in endpoint.secret_encrypted


def test_default_events_are_both_catalogues(client):
    response = client.post("/v1/webhooks", {"url": PUBLIC_URL}, format="json")
    assert response.status_code == 201
    assert response.json()["webhook"]["enabled_events"] == list(ALL_EVENTS)


def test_get_without_endpoint_is_null(client):
    assert client.get("/v1/webhooks").json() == {"success": True, "webhook": None}


def test_second_endpoint_is_a_conflict(client):
    assert create(client).status_code == 201
    response = create(client, url="https://93.184.215.15/other")
    assert response.status_code == 409
    assert response.json() == {"error": "This account already has a webhook endpoint.",
                               "code": "CONFLICT"}
    assert Endpoint.objects.count() == 1


def test_patch_updates_documented_fields(client):
    uuid = create(client).json()["webhook"]["uuid"]
    response = client.patch(f"/v1/webhooks/{uuid}", {
        "url": "https://93.184.215.15/new", "enabled_events": ["comms.sent"],
        "is_active": False, "description": "Staging"}, format="json")
    assert response.status_code == 200, response.content
    webhook = response.json()["webhook"]
    assert (webhook["url"], webhook["enabled_events"], webhook["is_active"],
            webhook["description"]) == ("https://93.184.215.15/new", ["comms.sent"], False,
                                        "Staging")
    response = client.patch(f"/v1/webhooks/{uuid}", {"is_active": True}, format="json")
    assert response.json()["webhook"]["is_active"] is True
    assert response.json()["webhook"]["disabled_reason"] == ""


@pytest.mark.parametrize("body", [
    {"secret": "mine"},  # unknown field
    {"url": "ftp://93.184.215.14/x"},
    {"url": "not a url"},
    {"url": "http://127.0.0.1/x"},
    {"enabled_events": ["delivery.exploded"]},
    {"enabled_events": []},
    {"enabled_events": "delivery.sent"},
    {"is_active": "yes"},
    {"description": "x" * 501},
    {"url": 42},
])
def test_bad_patch_is_a_validation_error_and_changes_nothing(client, body):
    uuid = create(client).json()["webhook"]["uuid"]
    before = Endpoint.objects.values().get(id=uuid)
    response = client.patch(f"/v1/webhooks/{uuid}", body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "VALIDATION_ERROR"
    assert set(response.json()) == {"error", "code"}
    assert Endpoint.objects.values().get(id=uuid) == before


@pytest.mark.parametrize("body", [
    {},
    {"url": "javascript:alert(1)"},
    {"url": PUBLIC_URL, "enabled_events": ["comms.sent", "nope"]},
    {"url": PUBLIC_URL, "description": "x" * 501},
    {"url": PUBLIC_URL, "signing_secret": "whsec_mine"},
    {"url": "https://user:pw@93.184.215.14/x"},
])
def test_bad_create_is_a_validation_error(client, body):
    response = client.post("/v1/webhooks", body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "VALIDATION_ERROR"
    assert not Endpoint.objects.exists()


def test_invalid_json_is_a_validation_error(client):
    response = client.post("/v1/webhooks", "{nope", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == "VALIDATION_ERROR"


def test_delete_is_soft_and_frees_the_slot(client):
    uuid = create(client).json()["webhook"]["uuid"]
    response = client.delete(f"/v1/webhooks/{uuid}")
    assert response.json() == {"success": True, "deleted": True}
    endpoint = Endpoint.objects.get(id=uuid)
    assert endpoint.deleted_at is not None and not endpoint.is_active
    assert client.get("/v1/webhooks").json()["webhook"] is None
    assert client.patch(f"/v1/webhooks/{uuid}", {}, format="json").status_code == 404
    assert client.delete(f"/v1/webhooks/{uuid}").status_code == 404
    assert create(client).status_code == 201


def test_other_accounts_endpoint_is_not_found(client, other_api):
    uuid = create(client).json()["webhook"]["uuid"]
    other = client_for(other_api.keys)
    for method, path in [("patch", f"/v1/webhooks/{uuid}"), ("delete", f"/v1/webhooks/{uuid}"),
                         ("post", f"/v1/webhooks/{uuid}/rotate-secret"),
                         ("get", f"/v1/webhooks/{uuid}/messages"),
                         ("post", f"/v1/webhooks/{uuid}/resend-failed")]:
        response = getattr(other, method)(path, {}, format="json")
        assert response.status_code == 404, (method, path)
        assert response.json() == {"error": "No webhook with this id.", "code": "NOT_FOUND"}
    assert other.get("/v1/webhooks").json()["webhook"] is None
    assert Endpoint.objects.get(id=uuid).is_active
    assert client.patch("/v1/webhooks/not-a-uuid", {}, format="json").status_code == 404


@pytest.mark.parametrize("header", [None, "Basic abc", "Bearer live_wrong"])
def test_unauthenticated_requests_are_401(db, header):
    client = APIClient()
    if header:
        client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get("/v1/webhooks")
    assert response.status_code == 401
    assert response.json()["code"] == "UNAUTHORIZED"
    assert set(response.json()) == {"error", "code"}


def test_rotate_secret_returns_a_new_secret(client):
    created = create(client).json()["webhook"]
    response = client.post(f"/v1/webhooks/{created['uuid']}/rotate-secret")
    assert response.status_code == 200
    rotated = response.json()["webhook"]
    assert rotated["signing_secret"].startswith("whsec_")
    assert rotated["signing_secret"] != created["signing_secret"]
    endpoint = Endpoint.objects.get(id=created["uuid"])
    assert endpoint.previous_secret_expires_at is not None


def test_resend_routes_validate_input(client):
    uuid = create(client).json()["webhook"]["uuid"]
    response = client.post(f"/v1/webhooks/{uuid}/resend-failed", {"since": "yesterday"},
                           format="json")
    assert response.status_code == 400 and response.json()["code"] == "VALIDATION_ERROR"
    response = client.post(f"/v1/webhooks/{uuid}/resend-failed", {
        "since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, format="json")
    assert response.status_code == 400 and response.json()["code"] == "VALIDATION_ERROR"
    response = client.post(f"/v1/webhooks/{uuid}/messages/msg_nope/resend")
    assert response.status_code == 404 and response.json()["code"] == "NOT_FOUND"
    response = client.get(f"/v1/webhooks/{uuid}/messages?status=weird")
    assert response.status_code == 400
