"""A provider's unsubscribes land in the same topic suppressions as Herald's one-click link:
SendGrid's group unsubscribe and SES's topic opt-out stop the email's topic, their global
ones every topic; none stops a ticket; a resubscribe lifts it; each is a webhook."""

import json

import pytest

from comms.callbacks.sendgrid import parse_batch
from comms.callbacks.ses import parse_message
from comms.lifecycle import provider_events_apply
from comms.messages import Message
from comms.models import Delivery, Suppression
from comms.services import message_queue
from tests.comms.test_ses import envelope, ses_event
from tests.conftest import guest
from tests.fakes.sendgrid_signing import sendgrid_event
from webhooks.models import Endpoint
from webhooks.models import Message as WebhookMessage


@pytest.fixture
def topic_id(api) -> str:
    response = api.post("/comms/v1/api/comms/template", {
        "name": "Updates", "subject": "News", "textBody": "Hi", "category": "event-updates"})
    assert response.status_code == 201, response.content
    return response.json()["id"]


@pytest.fixture
def sent(api, sendgrid, event_id, template_id, topic_id) -> dict[str, Delivery]:
    """A ticket and a topic email sent to Jane through the fake SendGrid."""
    body = guest(event_id, template_id)
    ticket = api.post("/checkin/v1/api/guest", body).json()["attendeeInvitationId"]
    news = api.post("/comms/v1/api/comms/send", {"attendeeId": body["id"],
                                                 "templateId": topic_id}).json()
    return {"ticket": Delivery.objects.get(id=ticket),
            "news": Delivery.objects.get(id=news["attendeeInvitationId"]),
            "attendee": body["id"]}


def _sendgrid(delivery: Delivery, kind: str, n: int = 1) -> None:
    provider_events_apply(parse_batch(json.dumps([sendgrid_event(
        kind, delivery_id=str(delivery.id), message_id=delivery.provider_message_id,
        email=delivery.recipient, event_id=f"evt-{kind}-{n}")])))


def _topics() -> list[str]:
    return sorted(Suppression.objects.filter(removed_at__isnull=True)
                  .values_list("topic", flat=True))


def test_a_group_unsubscribe_stops_the_topic_and_not_the_ticket(api, sent, keys):
    Endpoint.objects.create(account=keys.account, url="https://93.184.215.14/hooks",
                            secret_encrypted="x", enabled_events=["recipient.unsubscribed"])
    _sendgrid(sent["news"], "group_unsubscribe")
    [row] = Suppression.objects.all()
    assert (row.topic, row.reason, row.mode, row.delivery_id) == (
        "event-updates", "unsubscribed", "live", sent["news"].id)
    sent["news"].refresh_from_db()
    assert sent["news"].status == "unsubscribed"
    [hook] = WebhookMessage.objects.all()
    assert hook.payload["data"] == {"email": "jane@example.com", "topic": "event-updates",
                                    "mode": "live"}
    ticket = api.post("/comms/v1/api/comms/send", {"attendeeId": sent["attendee"],
                                                   "templateId": sent["ticket"].template_id})
    assert ticket.status_code == 200, ticket.content
    assert Delivery.objects.get(id=ticket.json()["attendeeInvitationId"]).status == "sent"


def test_a_global_unsubscribe_stops_every_topic(sent):
    _sendgrid(sent["news"], "unsubscribe")
    assert _topics() == [Suppression.ALL_TOPICS]


def test_an_unsubscribe_reported_on_a_ticket_stops_every_topic_and_no_transactional(
        api, sent, keys, template_id):
    """The recipient meant the rest: every topic stops, transactional mail still goes (spec
    000's 422 rule still refuses resending that very ticket to the pair, as the spec says)."""
    _sendgrid(sent["ticket"], "group_unsubscribe")
    assert _topics() == [Suppression.ALL_TOPICS]
    with api.capture(execute=True):
        receipt = message_queue(Message(account_id=keys.account.id, mode="live",
                                        recipient="jane@example.com", template_id=template_id))
    receipt.refresh_from_db()
    assert receipt.status == "sent"


def test_a_group_resubscribe_lifts_the_topic(sent):
    _sendgrid(sent["news"], "group_unsubscribe", 1)
    _sendgrid(sent["news"], "group_resubscribe", 2)
    assert _topics() == []
    assert Suppression.objects.get().removed_reason == "Resubscribed at sendgrid"


def test_a_replayed_provider_unsubscribe_is_recorded_once(sent):
    _sendgrid(sent["news"], "group_unsubscribe", 1)
    _sendgrid(sent["news"], "group_unsubscribe", 1)
    _sendgrid(sent["news"], "group_unsubscribe", 2)
    assert Suppression.objects.count() == 1


@pytest.mark.parametrize("preferences,topics", [
    ({"unsubscribeAll": True, "topicSubscriptionStatus": []}, [Suppression.ALL_TOPICS]),
    ({"unsubscribeAll": False, "topicSubscriptionStatus": [
        {"topicName": "Updates", "subscriptionStatus": "OptOut"}]}, ["event-updates"]),
])
def test_ses_subscription_events_stop_the_topic_or_every_topic(sent, preferences, topics):
    news = sent["news"]
    event = ses_event("Subscription", message_id=news.provider_message_id,
                      delivery_id=str(news.id), newTopicPreferences=preferences)
    provider_events_apply(parse_message(envelope(event)))
    assert _topics() == topics


def test_a_sandbox_unsubscribe_is_a_test_modes_every_topic(sandbox_api, event_id,
                                                           template_id):
    """The sandbox's scripted unsubscribe (unsub@) on a ticket: a rehearsal's, so test mode,
    every topic; the ticket's own delivery still says unsubscribed."""
    body = guest(event_id, template_id, email="unsub@example.com")
    response = sandbox_api.post("/checkin/v1/api/guest", body)
    assert Delivery.objects.get(id=response.json()["attendeeInvitationId"]).status == (
        "unsubscribed")
    [row] = Suppression.objects.all()
    assert (row.mode, row.topic) == ("test", Suppression.ALL_TOPICS)
