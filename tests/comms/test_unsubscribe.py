"""One-click unsubscribe (RFC 8058) end to end against the fake SendGrid: a topic email's
List-Unsubscribe headers, the one-click POST that stops the topic's next send and not the
ticket, replays, forged and expired links, other accounts, and the webhook."""

from email.utils import parseaddr
from urllib.parse import urlsplit

import pytest

from comms import unsubscribe
from comms.messages import Message
from comms.models import Delivery, Suppression
from comms.services import message_queue
from comms.unsubscribe import Recipient
from tests.conftest import TICKET, guest
from webhooks.models import Endpoint
from webhooks.models import Message as WebhookMessage

TOPIC = {
    "name": "Event updates",
    "subject": "News about {{ event.name }}",
    "htmlBody": '<p>Hi {{ firstName }}. <a href="{{ unsubscribe_url }}">Unsubscribe</a> · '
                '<a href="{{ preferences_url }}">Preferences</a></p>',
    "textBody": "Hi {{ firstName }}. Unsubscribe: {{ unsubscribe_url }}",
    "category": "event-updates",
}
ONE_CLICK = "List-Unsubscribe=One-Click"


@pytest.fixture
def topic_id(api) -> str:
    response = api.post("/comms/v1/api/comms/template", TOPIC)
    assert response.status_code == 201, response.content
    assert response.json()["category"] == "event-updates"
    return response.json()["id"]


@pytest.fixture
def endpoint(keys) -> Endpoint:
    return Endpoint.objects.create(
        account=keys.account, url="https://93.184.215.14/hooks", secret_encrypted="x",
        enabled_events=["recipient.unsubscribed", "recipient.resubscribed"])


def _guest(api, event_id, template_id, **fields) -> str:
    body = guest(event_id, template_id, **fields)
    response = api.post("/checkin/v1/api/guest", body)
    assert response.status_code == 200, response.content
    return body["id"]


def _send(api, attendee_id, template_id):
    return api.post("/comms/v1/api/comms/send", {"attendeeId": attendee_id,
                                                 "templateId": template_id})


def _headers(message) -> dict[str, str]:
    return message.body["personalizations"][0].get("headers") or {}


def _link_path(list_unsubscribe: str) -> str:
    """The https target of a List-Unsubscribe value, as a path on this server."""
    first = list_unsubscribe.split(",")[0].strip()
    assert first.startswith("<") and first.endswith(">")
    return urlsplit(first[1:-1]).path


def _one_click(client, path: str):
    return client.post(path, ONE_CLICK, content_type="application/x-www-form-urlencoded")


def _token(keys, *, topic="event-updates", mode="live", address="jane@example.com") -> str:
    return unsubscribe.token_make(Recipient(keys.account.id, mode, address, topic))


def _active(**filters):
    return Suppression.objects.filter(removed_at__isnull=True, **filters)


# --- the headers ----------------------------------------------------------------------------

def test_a_topic_email_carries_the_rfc_8058_headers_and_a_ticket_none(
        api, sendgrid, settings, event_id, template_id, topic_id):
    settings.HERALD_PUBLIC_BASE_URL = "https://herald.example"
    attendee_id = _guest(api, event_id, template_id)
    assert _send(api, attendee_id, topic_id).status_code == 200
    ticket, news = sendgrid.messages
    assert "List-Unsubscribe" not in _headers(ticket)
    headers = _headers(news)
    assert headers["List-Unsubscribe-Post"] == ONE_CLICK
    [target] = [t.strip() for t in headers["List-Unsubscribe"].split(",")]
    assert target.startswith("<https://herald.example/u/") and target.endswith(">")
    token = target[len("<https://herald.example/u/"):-1]
    assert unsubscribe.token_read(token) == Recipient(
        api.keys.account.id, "live", "jane@example.com", "event-updates")
    # The template's own links are the same page.
    html = next(c["value"] for c in news.body["content"] if c["type"] == "text/html")
    assert f'href="https://herald.example/u/{token}"' in html
    assert f'href="https://herald.example/u/{token}#preferences"' in html


def test_the_mailto_target_is_added_only_when_a_mailbox_is_set(
        api, sendgrid, settings, event_id, template_id, topic_id):
    settings.HERALD_UNSUBSCRIBE_MAILTO = "unsubscribe@herald.example"
    _send(api, _guest(api, event_id, template_id), topic_id)
    value = _headers(sendgrid.messages[-1])["List-Unsubscribe"]
    https, mailto = [t.strip() for t in value.split(",")]
    assert https.startswith("<http") and mailto.startswith("<mailto:unsubscribe@herald.example?")
    assert parseaddr(mailto[len("<mailto:"):-1].split("?")[0])[1] == "unsubscribe@herald.example"


# --- one click ------------------------------------------------------------------------------

def test_one_click_stops_the_next_send_of_the_topic_but_not_the_ticket(
        api, client, sendgrid, event_id, template_id, topic_id, endpoint):
    attendee_id = _guest(api, event_id, template_id)
    _send(api, attendee_id, topic_id)
    path = _link_path(_headers(sendgrid.messages[-1])["List-Unsubscribe"])

    response = _one_click(client, path)

    assert response.status_code == 200
    assert "You are unsubscribed" in response.content.decode()
    [row] = _active(address="jane@example.com")
    assert (row.topic, row.reason, row.mode) == ("event-updates", "unsubscribed", "live")
    sent_before = len(sendgrid.messages)
    # The engine's next message of the topic is not sent (whatever path queued it) ...
    with api.capture(execute=True):
        queued = message_queue(Message(account_id=api.keys.account.id, mode="live",
                                       recipient="Jane@Example.com", template_id=topic_id))
    queued.refresh_from_db()
    assert queued.status == "suppressed"
    assert "unsubscribed from event-updates" in queued.failure_reason
    # ... and spec 000's two-step send says why, in its 422.
    refused = _send(api, attendee_id, topic_id)
    assert refused.status_code == 422
    assert refused.json()["failureType"] == "unsubscribed"
    assert refused.json()["lastFailureReason"] == "Unsubscribed from event-updates"
    assert len(sendgrid.messages) == sent_before
    # The ticket still goes.
    resend = _send(api, attendee_id, template_id)
    assert resend.status_code == 200, resend.content
    assert Delivery.objects.get(id=resend.json()["attendeeInvitationId"]).status == "sent"
    assert len(sendgrid.messages) == sent_before + 1


def test_a_replayed_one_click_changes_nothing_and_emits_once(api, client, keys, endpoint):
    path = f"/u/{_token(keys)}"
    assert _one_click(client, path).status_code == 200
    assert _one_click(client, path).status_code == 200
    assert _active(address="jane@example.com").count() == 1
    [hook] = WebhookMessage.objects.filter(event_type="recipient.unsubscribed")
    assert hook.payload["data"] == {"email": "jane@example.com", "topic": "event-updates",
                                    "mode": "live"}


def test_a_test_keys_link_unsubscribes_in_the_sandbox_only(client, keys, endpoint):
    _one_click(client, f"/u/{_token(keys, mode='test')}")
    [row] = _active()
    assert row.mode == "test"
    # A rehearsal's unsubscribe reaches only endpoints that take test events.
    assert not WebhookMessage.objects.exists()


def test_a_transactional_emails_link_one_click_stops_every_topic(client, keys):
    _one_click(client, f"/u/{_token(keys, topic='')}")
    assert list(_active().values_list("topic", flat=True)) == [Suppression.ALL_TOPICS]


def test_get_never_unsubscribes(client, keys):
    """Link scanners fetch links: only a POST changes anything."""
    response = client.get(f"/u/{_token(keys)}")
    assert response.status_code == 200
    assert not Suppression.objects.exists()


# --- refused links --------------------------------------------------------------------------

def _altered(token: str) -> list[str]:
    payload, stamp, signature = token.split(".")
    flipped = payload[:-2] + ("A" if payload[-2] != "A" else "B") + payload[-1]
    return [f"{flipped}.{stamp}.{signature}", f"{payload}.{stamp}.{signature[:-1]}x",
            f"{payload}.{stamp}", "not-a-token", "a" * 2000]


@pytest.mark.parametrize("method", ["get", "post"])
def test_forged_or_altered_links_are_refused_with_nothing_changed(client, keys, endpoint,
                                                                  method):
    for token in _altered(_token(keys)):
        if method == "post":
            response = _one_click(client, f"/u/{token}")
        else:
            response = client.get(f"/u/{token}")
        assert response.status_code == 404, token
        assert "This link is not valid" in response.content.decode()
    assert not Suppression.objects.exists()
    assert not WebhookMessage.objects.exists()


def test_an_expired_link_is_refused(client, keys, settings):
    token = _token(keys)
    settings.HERALD_UNSUBSCRIBE_LINK_DAYS = -1  # every link older than tomorrow
    response = _one_click(client, f"/u/{token}")
    assert response.status_code == 400
    assert "expired" in response.content.decode()
    assert not Suppression.objects.exists()


def test_a_link_speaks_for_its_own_account_only(client, keys, other_api):
    """Two accounts mail the same person: one's link never touches the other's list, and
    its account cannot be swapped without breaking the signature."""
    _one_click(client, f"/u/{_token(keys)}")
    assert _active(account=keys.account).count() == 1
    assert not _active(account=other_api.keys.account).exists()
    other = _token(other_api.keys)
    mine = _token(keys)
    swapped = other.split(".")[0] + "." + ".".join(mine.split(".")[1:])
    assert _one_click(client, f"/u/{swapped}").status_code == 404
    assert not _active(account=other_api.keys.account).exists()


def test_a_deleted_accounts_link_is_refused(client, keys):
    token = _token(keys)
    keys.account.delete()
    assert client.get(f"/u/{token}").status_code == 404


def test_unsubscribe_uses_no_login_and_only_get_and_post(client, keys):
    path = f"/u/{_token(keys)}"
    assert client.put(path).status_code == 405
    assert client.delete(path).status_code == 405


def test_the_ticket_template_stays_transactional_by_default(api, template_id):
    body = api.get(f"/comms/v1/api/comms/template/{template_id}").json()
    assert body["category"] == "transactional"
    assert body["attachQr"] is False and body["attachIcs"] is False
    assert TICKET.get("category") is None


def test_the_suppression_api_shows_and_lifts_an_unsubscribe_by_its_topic(api, client, keys):
    Endpoint.objects.create(account=keys.account, url="https://93.184.215.14/hooks",
                            secret_encrypted="x", enabled_events=["recipient.resubscribed"])
    _one_click(client, f"/u/{_token(keys)}")
    [row] = api.get("/comms/v1/api/comms/suppression").json()["items"]
    assert (row["email"], row["reason"], row["topic"]) == (
        "jane@example.com", "unsubscribed", "event-updates")
    path = "/comms/v1/api/comms/suppression/jane@example.com"
    assert api._call("delete", path, {"reason": "asked by phone"}).status_code == 404
    lifted = api._call("delete", path, {"reason": "asked by phone", "topic": "event-updates"})
    assert lifted.status_code == 200 and lifted.json()["removedReason"] == "asked by phone"
    assert not _active().exists()
    # Lifted through the API, as on the page or in the admin: a resubscribe, told by webhook.
    assert [(m.event_type, m.payload["data"]["topic"]) for m in WebhookMessage.objects.all()] == [
        ("recipient.resubscribed", "event-updates")]
