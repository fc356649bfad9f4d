"""``POST /checkin/v1/api/checkin``'s errors as a generated client reads them (security
review, #19): the 422s (wrong_event, checkin_closed) have a component of their own that
declares every key they carry, as the 409 has; a 400 for neither or both of token and
attendeeId names those fields."""

import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from tests.conftest import guest

CHECKIN = "/checkin/v1/api/checkin"


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return SchemaGenerator().get_schema(request=None, public=True)


def _component(schema: dict[str, Any], status: str) -> tuple[str, dict[str, Any]]:
    answer = schema["paths"][CHECKIN]["post"]["responses"][status]
    name = answer["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    return name, schema["components"]["schemas"][name]


def _admin(api) -> Any:
    """The door's list: the guest by id, which needs an admin key."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api.keys.admin_key}",
                       HTTP_OCP_APIM_SUBSCRIPTION_KEY=api.keys.subscription_key)

    def post(body: dict[str, Any]) -> Any:
        with api.capture(execute=True):
            return client.post(CHECKIN, body, format="json")
    return post


def _event(api, **times: Any) -> str:
    body = {"name": "Gala", **{k: v.isoformat() for k, v in times.items()}}
    response = api.post("/checkin/v1/api/event", body)
    assert response.status_code == 201, response.content
    return response.json()["id"]


def _guest(api, event_id: str) -> str:
    body = guest(event_id)
    assert api.post("/checkin/v1/api/guest", body).status_code == 200
    return body["id"]


def test_the_422_has_its_own_component(schema):
    name, refused = _component(schema, "422")
    assert name != "CommsError"  # the family's plain error, which declares neither id
    assert set(refused["properties"]) == {"error", "message", "eventId", "attendeeId",
                                          "closedAt"}
    assert set(refused["required"]) == {"error", "message", "eventId"}


def test_each_422_answer_is_what_its_component_declares(api, schema):
    refused = _component(schema, "422")[1]
    declared, required = set(refused["properties"]), set(refused["required"])
    door = _admin(api)
    now = timezone.now()
    ann = _guest(api, _event(api))

    wrong = door({"attendeeId": ann, "eventId": str(uuid.uuid4())})
    ended = _guest(api, _event(api, startsAt=now - timedelta(days=3),
                               endsAt=now - timedelta(days=2)))
    closed = door({"attendeeId": ended})

    assert (wrong.status_code, wrong.json()["error"]) == (422, "wrong_event")
    assert (closed.status_code, closed.json()["error"]) == (422, "checkin_closed")
    for answer in (wrong, closed):
        assert required <= set(answer.json()) <= declared, answer.json()
    assert {"attendeeId", "eventId"} <= set(wrong.json())
    assert "closedAt" in closed.json()


@pytest.mark.parametrize("body, said", [
    ({"door": "door 2"}, "Give token or attendeeId (one of them)."),
    ({"token": "x.y", "attendeeId": str(uuid.uuid4())}, "Give token or attendeeId, not both."),
])
def test_a_400_for_the_guests_name_names_the_fields(api, body, said):
    response = api.post(CHECKIN, body)

    assert response.status_code == 400
    assert response.json() == {"error": "validation_error",
                               "message": "Invalid request: attendeeId, token.",
                               "fields": {"token": said, "attendeeId": said}}
