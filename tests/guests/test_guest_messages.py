"""A guest's messages as check-in hands them to the engine: they belong to the guest (deleted
with it and with its event), and carry the guest's names and event as they were when queued."""

from comms.models import Delivery
from comms.tasks import send_delivery
from guests.models import Attendee, Event
from tests.conftest import guest


def _guest_sent(api, event_id, template_id, **fields) -> tuple[str, Delivery]:
    body = guest(event_id, template_id, **fields)
    response = api.post("/checkin/v1/api/guest", body)
    assert response.status_code == 200, response.content
    return body["id"], Delivery.objects.get(id=response.json()["attendeeInvitationId"])


def test_deleting_a_guest_deletes_its_deliveries_and_no_other(api, event_id, template_id):
    gone, delivery = _guest_sent(api, event_id, template_id, email="gone@example.com")
    _, kept = _guest_sent(api, event_id, template_id, email="kept@example.com")
    Attendee.objects.get(id=gone).delete()
    assert not Delivery.objects.filter(id=delivery.id).exists()
    assert Delivery.objects.filter(id=kept.id).exists()


def test_deleting_an_event_deletes_its_guests_deliveries(api, event_id, template_id):
    _, first = _guest_sent(api, event_id, template_id, email="one@example.com")
    _, second = _guest_sent(api, event_id, template_id, email="two@example.com")
    other_event = api.post("/checkin/v1/api/event", {"name": "Autumn Fair"}).json()["id"]
    _, elsewhere = _guest_sent(api, other_event, template_id, email="three@example.com")
    Event.objects.get(id=event_id).delete()
    assert not Delivery.objects.filter(id__in=[first.id, second.id]).exists()
    assert Delivery.objects.filter(id=elsewhere.id).exists()


def test_a_queued_message_keeps_the_guest_as_queued_and_a_resend_takes_the_edit(
        api, event_id, template_id, django_capture_on_commit_callbacks):
    """Decided (review item 18): the names and event a message renders are those of the
    moment it was queued (the engine reads no guest row). A coordinator who corrects a guest
    and resends gets a new message with the correction."""
    body = guest(event_id, template_id, firstName="Jane")
    with django_capture_on_commit_callbacks(execute=False):  # queued, not sent yet
        response = api.client.post("/checkin/v1/api/guest", body, format="json")
    queued = response.json()["attendeeInvitationId"]
    # The coordinator's edit in the admin (the guest and its event), before the send runs.
    Attendee.objects.filter(id=body["id"]).update(first_name="Janet")
    Event.objects.filter(id=event_id).update(name="Summer Gala")
    send_delivery(queued)
    first = Delivery.objects.get(id=queued)
    assert first.status == "sent"
    assert "Hi Jane, see you at Spring Gala." in first.html_body  # as queued
    response = api.post("/comms/v1/api/comms/send", {
        "attendeeId": body["id"], "templateId": template_id, "correlationId": "resend-1"})
    assert response.status_code == 200, response.content
    again = Delivery.objects.get(id=response.json()["attendeeInvitationId"])
    assert again.status == "sent"
    assert "Hi Janet, see you at Summer Gala." in again.html_body
    assert again.subject == "Your ticket for Summer Gala"
