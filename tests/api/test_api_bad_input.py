"""Bad input gets a clear 400 naming the field (or 401/415) and changes nothing."""

import pytest

from guests.models import Attendee
from tests.conftest import guest


@pytest.mark.parametrize("field,value", [
    ("id", "not-a-guid"),
    ("id", 12),
    ("email", "not-an-email"),
    ("eventId", "123"),
    ("commsTemplateId", "zzz"),
    ("firstName", "x" * 101),
    ("firstName", {"nested": True}),
    ("correlationId", ""),
])
def test_bad_field_is_400_naming_it(api, event_id, template_id, field, value):
    response = api.post("/checkin/v1/api/guest", guest(event_id, template_id, **{field: value}))
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["error"] == "validation_error"
    assert field in body["fields"]
    assert Attendee.objects.count() == 0


@pytest.mark.parametrize("missing", ["id", "email", "eventId"])
def test_missing_required_field(api, event_id, missing):
    body = guest(event_id)
    del body[missing]
    response = api.post("/checkin/v1/api/guest", body)
    assert response.status_code == 400
    assert missing in response.json()["fields"]


def test_unknown_field_is_rejected(api, event_id):
    response = api.post("/checkin/v1/api/guest", guest(event_id, commsTemplateID="typo"))
    assert response.status_code == 400
    assert response.json()["fields"] == {"commsTemplateID": "Unknown field."}


def test_non_json_body(api):
    response = api.client.post("/checkin/v1/api/guest", data="{not json",
                               content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_json"


def test_body_that_is_not_an_object(api):
    response = api.post("/checkin/v1/api/guest", ["a", "list"])
    assert response.status_code == 400
    assert response.json()["error"] == "validation_error"


def test_wrong_content_type(api):
    response = api.client.post("/checkin/v1/api/guest", data="id=1",
                               content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415
    assert response.json()["error"] == "unsupported_media_type"


def test_missing_or_wrong_keys_are_401(api, keys):
    from rest_framework.test import APIClient

    path = "/checkin/v1/api/event"
    bare = APIClient()
    assert bare.get(path).status_code == 401
    assert bare.get(path).json()["error"] == "unauthorized"
    bare.credentials(HTTP_AUTHORIZATION=f"Bearer {keys.live_key}")
    response = bare.get(path)
    assert response.status_code == 401
    assert "Ocp-Apim-Subscription-Key" in response.json()["message"]
    bare.credentials(HTTP_AUTHORIZATION="Bearer live_nope",
                     HTTP_OCP_APIM_SUBSCRIPTION_KEY=keys.subscription_key)
    assert bare.get(path).status_code == 401
    bare.credentials(HTTP_AUTHORIZATION=f"Bearer {keys.live_key}",
                     HTTP_OCP_APIM_SUBSCRIPTION_KEY="sub_wrong")
    assert bare.get(path).status_code == 401
    bare.credentials(HTTP_AUTHORIZATION=f"Basic {keys.live_key}")
    assert bare.get(path).status_code == 401


def test_subscription_key_of_another_account_is_401(api, other_api):
    from rest_framework.test import APIClient

    mixed = APIClient()
    mixed.credentials(HTTP_AUTHORIZATION=f"Bearer {api.keys.live_key}",
                      HTTP_OCP_APIM_SUBSCRIPTION_KEY=other_api.keys.subscription_key)
    assert mixed.get("/checkin/v1/api/event").status_code == 401


def test_unknown_api_path_is_json_404(api):
    response = api.get("/checkin/v1/api/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
