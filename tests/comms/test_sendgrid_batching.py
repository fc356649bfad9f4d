"""SendGrid batching within SendGrid's own limits (issue 15, item 15).

A batch of due deliveries becomes as few Mail Send requests as SendGrid accepts: the fake
refuses what SendGrid refuses (an address twice across a request's personalizations, more
than 1,000 personalizations, substitutions over 10,000 bytes), so every test here also checks
that no request was refused (``attempts == len(messages)``): a refused batch would still be
delivered by the one-by-one fallback, but at the price of a 400 and a request per message.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest

from comms.models import Delivery
from comms.providers.base import EmailMessage, SendResult
from comms.providers.sendgrid import sendgrid_provider
from comms.tasks import send_delivery
from tests.conftest import guest
from tests.fakes.sendgrid_api import FakeSendGrid


@pytest.fixture
def fake() -> Iterator[FakeSendGrid]:
    with FakeSendGrid() as server:
        yield server


def message(n: int, to: str, **parts: str) -> EmailMessage:
    return EmailMessage(
        delivery_id=f"d{n}", from_email="tickets@herald.test", from_name="Herald",
        to_email=to, to_name=f"Guest {n}", subject=parts.get("subject", f"Ticket {n}"),
        html=parts.get("html", f"<p>Ticket {n}</p>"), text=parts.get("text", f"Ticket {n}"),
        custom_args={"herald_delivery_id": f"d{n}"})


def send(fake: FakeSendGrid, messages: list[EmailMessage]) -> list[SendResult | Exception]:
    provider = sendgrid_provider(api_key=fake.api_key, host=fake.url, timeout=5)
    return provider.send_batch(messages)


def accepted(fake: FakeSendGrid) -> Counter[str]:
    return Counter(r.custom_args["herald_delivery_id"] for r in fake.recipients())


def test_an_address_twice_in_a_batch_goes_in_separate_requests(fake):
    addresses = ["a@example.com", "b@example.com", "A@Example.com", "c@example.com",
                 "a@example.com"]
    messages = [message(n, to) for n, to in enumerate(addresses)]
    outcomes = send(fake, messages)
    assert all(isinstance(o, SendResult) for o in outcomes), outcomes
    assert fake.attempts == len(fake.messages) == 3, "no request refused, three needed"
    for request in fake.messages:
        emails = [p["to"][0]["email"].lower() for p in request.body["personalizations"]]
        assert len(emails) == len(set(emails))
    assert accepted(fake) == {f"d{n}": 1 for n in range(5)}, "every message sent, once"
    by_id = {r.custom_args["herald_delivery_id"]: r.message_id for r in fake.recipients()}
    assert [o.provider_message_id for o in outcomes] == [by_id[f"d{n}"] for n in range(5)]


def test_more_than_a_thousand_messages_take_requests_of_at_most_a_thousand(fake):
    messages = [message(n, f"g{n}@example.com") for n in range(2500)]
    outcomes = send(fake, messages)
    assert all(isinstance(o, SendResult) for o in outcomes)
    sizes = sorted(len(m.body["personalizations"]) for m in fake.messages)
    assert fake.attempts == 3 and sizes == [500, 1000, 1000]


def test_a_message_too_large_for_substitutions_is_sent_with_its_parts_as_content(fake):
    big = "<p>" + "é" * 5_000 + "</p>"
    messages = [message(0, "a@example.com"), message(1, "b@example.com", html=big),
                message(2, "c@example.com")]
    outcomes = send(fake, messages)
    assert all(isinstance(o, SendResult) for o in outcomes), outcomes
    assert fake.attempts == len(fake.messages) == 2
    [alone] = [m for m in fake.messages if len(m.body["personalizations"]) == 1]
    assert {"type": "text/html", "value": big} in alone.body["content"]
    assert "substitutions" not in alone.body["personalizations"][0]
    assert accepted(fake) == {"d0": 1, "d1": 1, "d2": 1}


@pytest.mark.django_db
def test_two_tickets_for_one_address_in_one_claim_are_both_sent(api, sendgrid, event_id,
                                                                template_id):
    """Through the pipeline: a family booked under one address (three guests, one email)
    among others; one task claims the five rows and SendGrid accepts every request."""
    emails = ["family@example.com", "x@example.com", "family@example.com", "y@example.com",
              "Family@example.com"]
    ids = [api.client.post("/checkin/v1/api/guest",
                           guest(event_id, template_id, firstName=f"Guest{n}", email=email),
                           format="json").json()["attendeeInvitationId"]
           for n, email in enumerate(emails)]
    send_delivery.delay(ids[0])
    assert set(Delivery.objects.filter(id__in=ids).values_list("status", flat=True)) == {"sent"}
    assert sendgrid.attempts == len(sendgrid.messages) == 3, "no request refused"
    assert accepted(sendgrid) == dict.fromkeys(ids, 1)


@pytest.mark.django_db
def test_one_claim_of_two_accounts_email_is_one_sendgrid_request(
        api, other_api, sendgrid, event_id, template_id, django_capture_on_commit_callbacks):
    """The platform's provider is the same for every account: a claim that mixes accounts
    sends their email in one batch (one request per sender), not one request per account."""
    other_event = other_api.post("/checkin/v1/api/event", {"name": "Autumn Fair"}).json()["id"]
    other_template = other_api.post("/comms/v1/api/comms/template", {
        "name": "Ticket", "subject": "Your ticket", "htmlBody": "<p>Hi</p>",
        "textBody": "Hi"}).json()["id"]
    ids = []
    with django_capture_on_commit_callbacks(execute=False):  # queued, no send task run yet
        for n, (client, event, template) in enumerate([
                (api, event_id, template_id), (other_api, other_event, other_template),
                (api, event_id, template_id), (other_api, other_event, other_template)]):
            response = client.client.post("/checkin/v1/api/guest", guest(
                event, template, firstName=f"Guest{n}", email=f"g{n}@example.com"),
                format="json")
            ids.append(response.json()["attendeeInvitationId"])
    assert set(Delivery.objects.filter(id__in=ids).values_list("status", flat=True)) == {
        "queued"}
    send_delivery(None)  # one task claims all four
    assert set(Delivery.objects.filter(id__in=ids).values_list("status", flat=True)) == {"sent"}
    assert sendgrid.attempts == len(sendgrid.messages) == 1, "one request for both accounts"
    assert accepted(sendgrid) == dict.fromkeys(ids, 1)
