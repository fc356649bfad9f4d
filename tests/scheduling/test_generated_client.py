"""An integrator's client generated from the OpenAPI schema (as tests/api/test_generated_client
does) schedules a send in each family and cancels it with the documented DELETE: the send
time goes through the generated models, the cancelled answer and the 409/404 parse into the
components the schema gives."""

import uuid
from datetime import timedelta

from django.utils import timezone

from accounts.models import ApiKey
from accounts.services import api_key_create
from tests.api.test_generated_client import (  # noqa: F401 (fixtures)
    ORDER,
    event_and_template,
    generated,
    guest,
    herald,
    ok,
    refused,
)


def soon() -> str:
    """An hour ahead, ISO 8601 with an offset (the generated models carry it as given)."""
    return (timezone.now() + timedelta(hours=1)).astimezone(
        timezone.get_fixed_timezone(-300)).isoformat()


def test_check_in_schedule_then_cancel(herald):  # noqa: F811
    event_id, template_id = event_and_template(herald)
    body = guest(event_id, "jane@example.com", comms_template_id=template_id, send_at=soon())
    created = ok(herald.call("POST /checkin/v1/api/guest", body=body))
    assert created.send_at is not None
    invitation = created.attendee_invitation_id

    cancelled = ok(herald.call("DELETE /comms/v1/api/comms/send/{invitation_id}",
                               invitation_id=invitation))

    assert cancelled.status.value == "cancelled" and cancelled.send_at is None
    again = herald.call("DELETE /comms/v1/api/comms/send/{invitation_id}",
                        invitation_id=invitation)
    assert refused(again, 409, "CommsError").error == "not_cancellable"
    unknown = herald.call("DELETE /comms/v1/api/comms/send/{invitation_id}",
                          invitation_id=str(uuid.uuid4()))
    assert refused(unknown, 404, "CommsError").error == "invitation_not_found"


def test_spec_004_schedule_then_cancel(herald):  # noqa: F811
    ok(herald.call("POST /v1/events", body=ORDER), 201)
    sent = ok(herald.call("POST /v1/send/{event}", event="order.confirmed", body={
        "to": "ann@example.com", "send_at": soon()}))
    assert sent.detailed_status == "scheduled"
    [delivery] = sent.deliveries

    cancelled = ok(herald.call("DELETE /v1/deliveries/{delivery_uuid}",
                               delivery_uuid=str(delivery.email)))

    assert cancelled.data.delivery.detailed_status == "cancelled"
    again = herald.call("DELETE /v1/deliveries/{delivery_uuid}",
                        delivery_uuid=str(delivery.email))
    assert refused(again, 409, "V004Error").code == "CONFLICT"


def test_spec_003_schedule_then_cancel(herald):  # noqa: F811
    brand = ok(herald.call("POST /v1/Brand/", body={
        "name": "Photo Co", "from_email": "hello@photo.example"}), 201).brand.brand_id
    sent = ok(herald.call("POST /v1/Email/", body={"messages": [{
        "to": "guest@example.com", "type_": "token", "brand_id": brand, "token": "abcde",
        "send_at": soon()}]}))
    [result] = sent.results
    assert result.state == "scheduled" and result.send_at

    cancelled = ok(herald.call("DELETE /v1/Email/{MessageId}",
                               message_id=str(result.message_id)))

    assert cancelled.email.state.value == "cancelled"
    unknown = herald.call("DELETE /v1/Email/{MessageId}", message_id=str(uuid.uuid4()))
    assert refused(unknown, 404, "ErrorOut").error == "No message with this id."


def test_spec_002_schedule_then_cancel(herald, keys):  # noqa: F811
    sent = ok(herald.call("POST /api/v1/communications/send", key=keys.admin_key, body={
        "subject": "Maintenance", "body": "Tonight at 22:00.", "channels": ["Email"],
        "email_address": "user@example.com", "send_at": soon()}))
    [result] = sent.results
    assert result.status == "scheduled"

    cancelled = ok(herald.call("DELETE /api/v1/communications/send/{communication_id}",
                               key=keys.admin_key, communication_id=str(result.id)))

    assert cancelled.status == "cancelled"
    test_admin = api_key_create(account=keys.account, name="t", mode=ApiKey.Mode.TEST,
                                is_admin=True)
    other_mode = herald.call("DELETE /api/v1/communications/send/{communication_id}",
                             key=test_admin, communication_id=str(result.id))
    assert other_mode.status_code == 404 and other_mode.parsed is not None
