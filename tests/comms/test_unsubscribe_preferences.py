"""The preferences page at /u/<token>: per-topic choices in the sender's name, saved with
CSRF, resubscribing lifts an unsubscribe (with its webhook); the templates' category in the
API and the admin; suppressions shown in words in the admin; bulk send skips the topic's."""

import re

import pytest
from django.test import Client

from accounts.models import Membership
from comms import unsubscribe
from comms.models import Suppression
from comms.unsubscribe import Recipient
from domains.models import Brand
from templates.models import MessageTemplate
from tests.conftest import bulk_send_done, guest, member_client
from webhooks.models import Endpoint
from webhooks.models import Message as WebhookMessage

ONE_CLICK = "List-Unsubscribe=One-Click"


def _template(api, name: str, category: str | None) -> str:
    body = {"name": name, "subject": f"{name} news", "textBody": "Hi {{ firstName }}"}
    if category is not None:
        body["category"] = category
    response = api.post("/comms/v1/api/comms/template", body)
    assert response.status_code == 201, response.content
    return response.json()["id"]


@pytest.fixture
def topics(api) -> None:
    _template(api, "Updates", "event-updates")
    _template(api, "Offers", "marketing")
    _template(api, "Receipt", None)  # transactional: not a choice on the page


@pytest.fixture
def token(keys) -> str:
    return unsubscribe.token_make(Recipient(keys.account.id, "live", "jane@example.com",
                                            "event-updates"))


def _active(**filters):
    return Suppression.objects.filter(removed_at__isnull=True, **filters)


def _boxes(html: str) -> dict[str, bool]:
    """Each topic checkbox of the page: checked or not."""
    return {m.group(1): bool(m.group(2)) for m in re.finditer(
        r'name="topic" value="([^"]+)"( checked)?', html)}


def _csrf_client(path: str) -> tuple[Client, str]:
    client = Client(enforce_csrf_checks=True)
    page = client.get(path).content.decode()
    return client, re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)


def test_the_page_shows_each_topic_in_the_senders_name(client, keys, topics, token):
    Brand.objects.create(account=keys.account, name="Acme", from_name="Acme Live",
                         from_email="hello@acme.example", is_default=True)
    response = client.get(f"/u/{token}")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Acme Live" in html and "jane@example.com" in html
    assert _boxes(html) == {"event-updates": True, "marketing": True}
    assert "Unsubscribe from “event-updates”" in html
    assert "<link" not in html and "<script" not in html  # no external assets
    assert response["Cache-Control"] == "no-store"
    assert response["Referrer-Policy"] == "no-referrer"


def test_without_a_brand_the_page_names_the_account(client, keys, topics, token):
    assert "Acme Events" in client.get(f"/u/{token}").content.decode()


def test_saving_choices_unsubscribes_and_resubscribes_with_webhooks(keys, topics, token):
    Endpoint.objects.create(account=keys.account, url="https://93.184.215.14/hooks",
                            secret_encrypted="x",
                            enabled_events=["recipient.unsubscribed", "recipient.resubscribed"])
    path = f"/u/{token}"
    client, csrf = _csrf_client(path)
    saved = client.post(path, {"csrfmiddlewaretoken": csrf, "form": "preferences",
                               "topic": ["event-updates"]})
    assert saved.status_code == 302 and saved["Location"].endswith("?saved=1#preferences")
    assert list(_active().values_list("topic", flat=True)) == ["marketing"]
    page = client.get(path + "?saved=1").content.decode()
    assert _boxes(page) == {"event-updates": True, "marketing": False}
    assert "Your choices are saved" in page

    client.post(path, {"csrfmiddlewaretoken": csrf, "form": "preferences",
                       "topic": ["event-updates", "marketing"]})  # resubscribe

    assert not _active().exists()
    lifted = Suppression.objects.get(topic="marketing")
    assert lifted.removed_reason == "Resubscribed on the preferences page"
    events = [(m.event_type, m.payload["data"]["topic"])
              for m in WebhookMessage.objects.order_by("created_at")]
    assert events == [("recipient.unsubscribed", "marketing"),
                      ("recipient.resubscribed", "marketing")]


def test_stop_every_topic_and_lift_it(keys, topics, token):
    path = f"/u/{token}"
    client, csrf = _csrf_client(path)
    client.post(path, {"csrfmiddlewaretoken": csrf, "form": "preferences",
                       "topic": ["event-updates", "marketing"], "all": "1"})
    assert list(_active().values_list("topic", flat=True)) == [Suppression.ALL_TOPICS]
    assert 'name="all" value="1" checked' in client.get(path).content.decode()
    client.post(path, {"csrfmiddlewaretoken": csrf, "form": "preferences",
                       "topic": ["event-updates", "marketing"]})
    assert not _active().exists()


def test_the_form_without_its_csrf_token_changes_nothing(keys, topics, token):
    client = Client(enforce_csrf_checks=True)
    response = client.post(f"/u/{token}", {"form": "preferences", "topic": []})
    assert response.status_code == 403
    assert not Suppression.objects.exists()


def test_one_click_from_a_mail_client_needs_no_cookie(keys, token):
    client = Client(enforce_csrf_checks=True)
    response = client.post(f"/u/{token}", ONE_CLICK,
                           content_type="application/x-www-form-urlencoded")
    assert response.status_code == 200
    assert _active(topic="event-updates").count() == 1


def test_after_one_click_the_page_says_so_and_offers_to_resubscribe(client, keys, token):
    client.post(f"/u/{token}", ONE_CLICK, content_type="application/x-www-form-urlencoded")
    html = client.get(f"/u/{token}").content.decode()
    assert "You are unsubscribed from “event-updates”" in html
    assert _boxes(html) == {"event-updates": False}


def test_a_bounce_is_not_a_choice_the_page_can_lift(client, keys, token):
    Suppression.objects.create(account=keys.account, address="jane@example.com",
                               reason="bounced")
    page = client.get(f"/u/{token}")
    client.post(f"/u/{token}", {"form": "preferences", "topic": ["event-updates"]})
    assert "bounced" not in page.content.decode()
    assert _active(reason="bounced", topic="").count() == 1


# --- bulk send ------------------------------------------------------------------------------

def test_bulk_send_skips_whoever_unsubscribed_from_the_topic_not_from_tickets(
        api, client, keys, event_id, template_id, django_capture_on_commit_callbacks):
    topic_id = _template(api, "Updates", "event-updates")
    for email in ("jane@example.com", "joe@example.com"):
        assert api.post("/checkin/v1/api/guest", guest(event_id, email=email)).status_code == 200
    jane = Recipient(keys.account.id, "live", "jane@example.com", "event-updates")
    client.post(f"/u/{unsubscribe.token_make(jane)}", ONE_CLICK,
                content_type="application/x-www-form-urlencoded")
    news = bulk_send_done(event_id, topic_id, audience="all", mode="live",
                          capture=django_capture_on_commit_callbacks)
    assert (news.queued, news.skipped_suppressed) == (1, 1)
    tickets = bulk_send_done(event_id, template_id, audience="all", mode="live",
                             capture=django_capture_on_commit_callbacks)
    assert (tickets.queued, tickets.skipped_suppressed) == (2, 0)


# --- the templates' category ----------------------------------------------------------------

@pytest.mark.parametrize("category", ["Event Updates!", "*", "a" * 65, "-x", 7, ""])
def test_a_category_that_is_not_a_topic_slug_is_a_400(api, category):
    response = api.post("/comms/v1/api/comms/template", {
        "name": "X", "subject": "S", "textBody": "T", "category": category})
    assert response.status_code == 400
    assert "category" in str(response.json())


def test_category_and_attachments_round_trip_and_a_put_without_them_keeps_them(api):
    created = api.post("/comms/v1/api/comms/template", {
        "name": "Ticket", "subject": "S", "textBody": "T", "category": " Event-Updates ",
        "attachQr": True, "attachIcs": True}).json()
    assert (created["category"], created["attachQr"], created["attachIcs"]) == (
        "event-updates", True, True)
    path = f"/comms/v1/api/comms/template/{created['id']}"
    kept = api.put(path, {"name": "Ticket", "subject": "S2", "textBody": "T"}).json()
    assert (kept["category"], kept["attachQr"], kept["attachIcs"]) == (
        "event-updates", True, True)
    changed = api.put(path, {"name": "Ticket", "subject": "S2", "textBody": "T",
                             "category": "transactional", "attachQr": False}).json()
    assert (changed["category"], changed["attachQr"]) == ("transactional", False)


def test_attachment_flags_are_json_booleans(api):
    response = api.post("/comms/v1/api/comms/template", {
        "name": "X", "subject": "S", "textBody": "T", "attachQr": "yes"})
    assert response.status_code == 400


# --- the admin ------------------------------------------------------------------------------

def test_the_suppressions_list_says_what_each_stops(keys, token):
    Client().post(f"/u/{token}", ONE_CLICK, content_type="application/x-www-form-urlencoded")
    Suppression.objects.create(account=keys.account, address="bounce@example.com",
                               reason="bounced")
    staff = member_client(keys.account, "support", Membership.Role.STAFF)
    html = staff.get("/admin/comms/suppression/").content.decode()
    assert "Unsubscribed from event-updates" in html and "Every message" in html
    filtered = staff.get("/admin/comms/suppression/?topic=event-updates").content.decode()
    assert "jane@example.com" in filtered and "bounce@example.com" not in filtered


def test_the_template_admin_checks_the_category(keys):
    owner = member_client(keys.account, "owner", Membership.Role.OWNER)
    response = owner.post("/admin/templates/messagetemplate/add/", {
        "name": "News", "account": keys.account.id, "channel": "email", "language": "en",
        "category": "Not a slug", "subject": "Hi", "text_body": "Hello",
        "versions-TOTAL_FORMS": 0, "versions-INITIAL_FORMS": 0})
    assert response.status_code == 200
    assert "lower-case letters and digits" in response.content.decode()
    response = owner.post("/admin/templates/messagetemplate/add/", {
        "name": "News", "account": keys.account.id, "channel": "email", "language": "en",
        "category": "event-updates", "attach_ics": "on", "subject": "Hi",
        "text_body": "Hello", "versions-TOTAL_FORMS": 0, "versions-INITIAL_FORMS": 0})
    assert response.status_code == 302, response.content.decode()[:2000]
    page = owner.get("/admin/templates/messagetemplate/").content.decode()
    assert "Topic: event-updates" in page
    template = MessageTemplate.objects.get(account=keys.account, name="News")
    assert (template.category, template.attach_ics, template.attach_qr) == (
        "event-updates", True, False)
    change = owner.get(f"/admin/templates/messagetemplate/{template.pk}/change/")
    assert 'data-token="{{ unsubscribe_url }}"' in change.content.decode()  # the picker


def test_lifting_an_unsubscribe_in_the_admin_is_a_resubscribe(keys, token):
    Endpoint.objects.create(account=keys.account, url="https://93.184.215.14/hooks",
                            secret_encrypted="x", enabled_events=["recipient.resubscribed"])
    Client().post(f"/u/{token}", ONE_CLICK, content_type="application/x-www-form-urlencoded")
    row = Suppression.objects.get()
    owner = member_client(keys.account, "owner", Membership.Role.OWNER)
    response = owner.post(f"/admin/comms/suppression/{row.pk}/change/",
                          {"removed_reason": "Asked us by phone to get updates again"})
    assert response.status_code == 302, response.content.decode()[:1500]
    row.refresh_from_db()
    assert row.removed_at and row.removed_reason == "Asked us by phone to get updates again"
    [hook] = WebhookMessage.objects.all()
    assert (hook.event_type, hook.payload["data"]["topic"]) == ("recipient.resubscribed",
                                                                "event-updates")
