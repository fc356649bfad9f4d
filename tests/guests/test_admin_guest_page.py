"""The guest's page as support uses it: the ticket's history in plain words, Send / Resend /
Fix the email and resend (the API's service and its 422 rule), and Support search, scoped to
the user's accounts."""

import html as html_lib
import re

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from accounts.models import Membership
from comms.models import Delivery
from guests.admin_guest import AttendeeAdmin
from guests.models import Attendee
from tests.conftest import guest, member_client


@pytest.fixture
def live_sandbox(settings):
    """Live sends through the sandbox's lifecycle (bounce@ bounces, others are opened)."""
    settings.HERALD_SANDBOX_DELAY_SECONDS = 0
    settings.HERALD_EMAIL_PROVIDER = "sandbox"


def _member(keys, username: str = "sam", role=Membership.Role.SUPPORT) -> Client:
    return member_client(keys.account, username, role)


def _page(client, attendee_id) -> str:
    response = client.get(reverse("admin:guests_attendee_change", args=[attendee_id]))
    assert response.status_code == 200
    return response.content.decode()


def _text(html: str) -> str:
    """The page's words, tags and runs of white space dropped."""
    return " ".join(html_lib.unescape(re.sub(r"<[^>]+>", " ", html)).split())


def _post(client, name: str, attendee_id, capture, **data) -> tuple[str, list[str]]:
    with capture(execute=True):
        response = client.post(reverse(f"admin:guests_attendee_{name}", args=[attendee_id]),
                               data, follow=True)
    assert response.status_code == 200
    assert response.redirect_chain[-1][0] == reverse("admin:guests_attendee_change",
                                                     args=[attendee_id])
    return response.content.decode(), [str(m) for m in get_messages(response.wsgi_request)]


def test_the_guest_page_tells_the_bounce_in_plain_words_newest_first(api, live_sandbox,
                                                                     event_id, template_id):
    body = guest(event_id, template_id, email="bounce@example.com", firstName="Bea",
                 lastName="Bounce", correlationId="order-77")
    api.post("/checkin/v1/api/guest", body)
    html = _page(_member(api.keys), body["id"])
    text = _text(html)
    assert "Bea Bounce" in text and "order-77" in text and "Spring Gala" in text
    history = _text(html.split('id="ticket-history"')[1])
    # Newest first: the bounce, then the send, then the queueing.
    assert (history.index("Bounced: the mailbox does not exist")
            < history.index("Sent to the mail provider") < history.index("Queued"))
    assert "The receiving server said: “550 5.1.1 No such user”" in history
    # The refusal a resend would meet, before anyone clicks; no raw JSON, no ids.
    assert "We can't send to this address: it bounced on" in text
    assert "(the mailbox does not exist). Fix the address and resend." in text
    assert body["id"] not in text and '{"' not in text and "comms.bounced" not in text
    # A button that would be refused is not offered: fixing the address is.
    assert "Resend ticket" not in text and "Fix the email and resend" in text


def test_sandbox_rehearsals_are_shown_apart_and_labelled(api, sandbox_api, live_sandbox,
                                                         event_id, template_id):
    body = guest(event_id, template_id, email="jane@example.com")
    api.post("/checkin/v1/api/guest", body)
    sandbox_api.post("/checkin/v1/api/guest", body)  # a rehearsal of the same guest
    html = _page(_member(api.keys), body["id"])
    live, sandbox = html.split('id="sandbox-tickets"')
    assert "Sandbox rehearsals" in _text(live.split('id="live-tickets"')[1])
    tickets = re.compile(r'class="[^"]*\bherald-ticket\b')
    assert len(tickets.findall(live)) == 1 and len(tickets.findall(sandbox)) == 1
    assert "herald-sandbox" in sandbox and "herald-sandbox" not in live
    assert "Opened" in _text(sandbox) and "Opened" in _text(live)


def test_resend_from_the_guest_page_sends_again_and_says_so(api, live_sandbox, event_id,
                                                            template_id,
                                                            django_capture_on_commit_callbacks):
    body = guest(event_id, template_id, email="lost@example.com")
    api.post("/checkin/v1/api/guest", body)
    client = _member(api.keys)
    assert "Resend ticket" in _text(_page(client, body["id"]))
    html, said = _post(client, "send_ticket", body["id"], django_capture_on_commit_callbacks)
    assert said == ["Ticket sent to lost@example.com: it is queued, and its history is below."]
    assert Delivery.objects.filter(owner_id=body["id"], mode="live").count() == 2
    assert _text(html.split('id="ticket-history"')[1]).count("“Ticket” to lost@example.com") == 2


def test_a_refused_resend_is_said_in_words_a_guest_could_be_told(api, live_sandbox, event_id,
                                                                 template_id,
                                                                 django_capture_on_commit_callbacks):
    body = guest(event_id, template_id, email="bounce@example.com")
    api.post("/checkin/v1/api/guest", body)
    _, said = _post(_member(api.keys), "send_ticket", body["id"],
                    django_capture_on_commit_callbacks)
    [message] = said
    assert message.startswith("Not sent to bounce@example.com: We can't send to this address: "
                              "it bounced on ")
    assert "(the mailbox does not exist). Fix the address and resend." in message
    assert Delivery.objects.filter(owner_id=body["id"]).count() == 1


def test_support_fixes_the_email_and_resends_and_the_history_names_who(
        api, live_sandbox, event_id, template_id, django_capture_on_commit_callbacks):
    body = guest(event_id, template_id, email="bounce@example.com")
    api.post("/checkin/v1/api/guest", body)
    client = _member(api.keys)
    html, said = _post(client, "fix_email", body["id"], django_capture_on_commit_callbacks,
                       email="jane@example.com")
    assert said == ["Email corrected: bounce@example.com → jane@example.com.",
                    "Ticket sent to jane@example.com: it is queued, and its history is below."]
    assert Attendee.objects.get(id=body["id"]).email == "jane@example.com"
    latest = Delivery.objects.filter(owner_id=body["id"]).order_by("-created_at").first()
    assert (latest.recipient, latest.status) == ("jane@example.com", "opened")
    assert "We can't send" not in _text(html)  # the old bounce no longer blocks
    entry = LogEntry.objects.get(object_id=body["id"])
    assert entry.user.username == "sam"
    assert entry.get_change_message() == ("Email corrected from bounce@example.com to "
                                          "jane@example.com.")


@pytest.mark.parametrize("email,expected", [
    ("not-an-email", "Not changed: Enter a valid email address."),
    ("BOUNCE@example.com", "Not changed: bounce@example.com is already this guest's address. "
                           "Type the corrected one."),
])
def test_a_fix_that_is_no_fix_changes_nothing(api, live_sandbox, event_id, template_id, email,
                                              expected, django_capture_on_commit_callbacks):
    body = guest(event_id, template_id, email="bounce@example.com")
    api.post("/checkin/v1/api/guest", body)
    _, said = _post(_member(api.keys), "fix_email", body["id"],
                    django_capture_on_commit_callbacks, email=email)
    assert said == [expected]
    assert Attendee.objects.get(id=body["id"]).email == "bounce@example.com"
    assert Delivery.objects.filter(owner_id=body["id"]).count() == 1
    assert not LogEntry.objects.exists()


def test_a_guest_never_sent_a_ticket_gets_a_first_one_of_the_chosen_template(
        api, live_sandbox, event_id, template_id, django_capture_on_commit_callbacks):
    body = guest(event_id, email="new@example.com")  # no template: nothing sent
    api.post("/checkin/v1/api/guest", body)
    client = _member(api.keys)
    text = _text(_page(client, body["id"]))
    assert "No ticket has been sent to this guest yet." in text and "Send ticket" in text
    _, said = _post(client, "send_ticket", body["id"], django_capture_on_commit_callbacks)
    assert said == ["Choose the template to send as this guest's ticket."]
    _, said = _post(client, "send_ticket", body["id"], django_capture_on_commit_callbacks,
                    template=template_id)
    assert said == ["Ticket sent to new@example.com: it is queued, and its history is below."]
    assert Delivery.objects.get(owner_id=body["id"]).template_id is not None


def test_fixing_the_email_of_a_guest_never_sent_a_ticket_sends_nothing(
        api, live_sandbox, event_id, template_id, django_capture_on_commit_callbacks):
    body = guest(event_id, email="nwe@example.com")
    api.post("/checkin/v1/api/guest", body)
    client = _member(api.keys)
    assert "Fix the email and resend" not in _text(_page(client, body["id"]))
    _, said = _post(client, "fix_email", body["id"], django_capture_on_commit_callbacks,
                    email="new@example.com")
    assert said == ["Email corrected: nwe@example.com → new@example.com."]
    assert not Delivery.objects.filter(owner_id=body["id"]).exists()


def test_without_any_template_the_page_explains_and_links_to_templates(api, event_id):
    body = guest(event_id, email="new@example.com")
    api.post("/checkin/v1/api/guest", body)
    html = _page(_member(api.keys), body["id"])
    assert "This account has no email template to send as a ticket" in _text(html)
    assert reverse("admin:templates_messagetemplate_changelist") in html


def test_a_suppressed_address_is_explained_on_the_page(api, live_sandbox, event_id,
                                                       template_id):
    from comms.services import suppressions_add

    body = guest(event_id, template_id, email="jane@example.com")
    api.post("/checkin/v1/api/guest", body)
    suppressions_add(items=[{"account_id": api.keys.account.id, "address": "jane@example.com",
                             "reason": "unsubscribed", "mode": "live"}])
    text = _text(_page(_member(api.keys), body["id"]))
    assert "Sends to this address will not go out: this address unsubscribed on " in text


def test_a_send_stopped_by_the_suppression_list_says_since_when(
        api, live_sandbox, event_id, template_id, django_capture_on_commit_callbacks):
    first = guest(event_id, template_id, email="bounce@example.com")
    api.post("/checkin/v1/api/guest", first)  # bounces: the address is suppressed
    other = guest(event_id, template_id, email="bounce@example.com")  # the same address
    api.post("/checkin/v1/api/guest", other)
    history = _text(_page(_member(api.keys), other["id"]).split('id="ticket-history"')[1])
    assert re.search(r"Not sent: this address is on the suppression list because it bounced "
                     r"on \d{1,2} [A-Z][a-z]{2}", history)


def test_the_since_is_the_suppression_that_stopped_the_send_not_another_topics(
        api, live_sandbox, event_id, template_id):
    from datetime import timedelta

    from django.utils import timezone

    from comms.models import Suppression

    first = guest(event_id, template_id, email="bounce@example.com")
    api.post("/checkin/v1/api/guest", first)  # bounces: the address is suppressed
    bounced = timezone.now() - timedelta(days=20)
    Suppression.objects.update(created_at=bounced)
    Suppression.objects.create(account=api.keys.account, mode="live", reason="unsubscribed",
                               address="bounce@example.com",
                               topic="marketing")  # later, and about marketing only
    other = guest(event_id, template_id, email="bounce@example.com")  # a ticket
    api.post("/checkin/v1/api/guest", other)
    history = _text(_page(_member(api.keys), other["id"]).split('id="ticket-history"')[1])
    assert f"because it bounced on {bounced.day} " in history


def test_the_buttons_are_posts_in_the_guests_account_only(api, other_api, live_sandbox,
                                                          event_id, template_id):
    body = guest(event_id, template_id, email="jane@example.com")
    api.post("/checkin/v1/api/guest", body)
    stranger = _member(other_api.keys, "olga")
    for name in ("send_ticket", "fix_email"):
        url = reverse(f"admin:guests_attendee_{name}", args=[body["id"]])
        assert stranger.post(url, {"email": "x@example.com"}).status_code == 404
        assert _member(api.keys, f"s-{name}").get(url).status_code == 405
    assert Delivery.objects.filter(owner_id=body["id"]).count() == 1
    assert Attendee.objects.get(id=body["id"]).email == "jane@example.com"


# --- Support search --------------------------------------------------------------------------

def _search(client, query: str):
    return client.get(reverse("admin:guests_attendee_support"), {"q": query})


def test_support_search_finds_by_name_email_or_order_reference(api, live_sandbox, event_id,
                                                               template_id):
    for first, email, ref in (("Ann", "ann.lee@example.com", "order-1"),
                              ("Bob", "bounce-bob@example.com", "order-2"),
                              ("Cleo", "cleo@example.org", "order-30")):
        api.post("/checkin/v1/api/guest", guest(event_id, template_id, firstName=first,
                                                lastName="Lee", email=email, correlationId=ref))
    client = _member(api.keys)
    found = _text(_search(client, "EXAMPLE.COM").content.decode())
    assert "ann.lee@example.com" in found and "bounce-bob@example.com" in found
    assert "cleo@" not in found and "2 guests found" in found
    assert "Bounced: the mailbox does not exist" in found and "Opened" in found
    assert "3 guests found" in _text(_search(client, "lee").content.decode())
    assert "Cleo Lee" in _text(_search(client, "cleo lee").content.decode())
    assert "1 guest found" in _text(_search(client, "order-3").content.decode())
    # One guest named exactly (the whole email or order reference): straight to their page.
    response = _search(client, "Ann.Lee@example.com")
    ann = Attendee.objects.get(email="ann.lee@example.com")
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:guests_attendee_change", args=[ann.pk])
    assert _search(client, "order-2")["Location"].endswith(
        reverse("admin:guests_attendee_change",
                args=[Attendee.objects.get(email="bounce-bob@example.com").pk]))
    # A partial match of one guest is a list (it may not be the one support means).
    assert _search(client, "cleo").status_code == 200
    # One whole email among partial matches of others: that guest (joann@ also contains it).
    api.post("/checkin/v1/api/guest", guest(event_id, email="joann.lee@example.com"))
    assert _search(client, "ann.lee@example.com")["Location"] == reverse(
        "admin:guests_attendee_change", args=[ann.pk])
    # Two guests with the same email (a person with two tickets): the list, to choose.
    api.post("/checkin/v1/api/guest", guest(event_id, email="cleo@example.org"))
    assert "2 guests found" in _text(_search(client, "cleo@example.org").content.decode())


def test_support_search_never_shows_another_accounts_guests(api, other_api, live_sandbox,
                                                            event_id, template_id):
    api.post("/checkin/v1/api/guest", guest(event_id, template_id, email="ann@example.com",
                                            correlationId="order-1"))
    other_event = other_api.post("/checkin/v1/api/event", {"name": "Beta Gala"}).json()["id"]
    other_api.post("/checkin/v1/api/guest", guest(other_event, email="ann@example.net",
                                                  correlationId="order-1"))
    alpha = _member(api.keys)
    page = _text(_search(alpha, "ann").content.decode())
    assert "ann@example.com" in page and "ann@example.net" not in page and "Beta" not in page
    # The other account's exact email or reference: nothing, not a redirect to its guest.
    assert "No guest of your events matches" in _text(
        _search(alpha, "ann@example.net").content.decode())
    response = _search(alpha, "order-1")  # one of mine matches exactly: mine
    assert response["Location"] == reverse(
        "admin:guests_attendee_change", args=[Attendee.objects.get(email="ann@example.com").pk])


def test_support_search_needs_a_staff_login_and_only_reads(client, keys):
    response = client.get(reverse("admin:guests_attendee_support"), {"q": "ann"})
    assert response.status_code == 302 and "/login/" in response["Location"]
    assert _member(keys).post(reverse("admin:guests_attendee_support")).status_code == 405


# --- the guest list --------------------------------------------------------------------------

def test_the_guest_list_says_the_last_ticket_in_words_and_links_each_row_to_the_guest(
        api, sandbox_api, live_sandbox, event_id, template_id):
    bounced = guest(event_id, template_id, email="bounce@example.com", firstName="Bea")
    api.post("/checkin/v1/api/guest", bounced)
    api.post("/checkin/v1/api/guest", guest(event_id, email="quiet@example.com",
                                            firstName="Quinn"))
    sandbox_api.post("/checkin/v1/api/guest", guest(event_id, template_id,
                                                    email="rehearsal@example.com"))
    client = _member(api.keys)
    html = client.get(reverse("admin:guests_attendee_changelist")).content.decode()
    text = _text(html)
    assert "Bounced: the mailbox does not exist" in text
    assert "No ticket sent yet" in text and "Sandbox rehearsal: Opened" in text
    assert f'href="{reverse("admin:guests_attendee_change", args=[bounced["id"]])}' in html
    assert "Sandbox rehearsal" in text and "live" in text  # "Added by"
    assert "Select attendee to change" not in text and "Order reference" in text
    assert "order-2026-0042" in text and "Correlation id" not in text


def test_staff_edit_the_guest_below_the_page_choosing_the_event_by_name(api, event_id):
    body = guest(event_id, email="jane@example.com")
    api.post("/checkin/v1/api/guest", body)
    html = _page(_member(api.keys, "stella", Membership.Role.STAFF), body["id"])
    assert re.search(r'<select name="event"[^>]*>.*Spring Gala', html, re.S)
    assert "Details" in _text(html) and "Order reference" in _text(html)


def test_the_guest_list_sorts_by_the_last_tickets_status(api, live_sandbox, event_id,
                                                         template_id):
    for email in ("ann@example.com", "bounce@example.com"):
        api.post("/checkin/v1/api/guest", guest(event_id, template_id, email=email))
    client = _member(api.keys)
    url = reverse("admin:guests_attendee_changelist")
    column = AttendeeAdmin.list_display.index("last_ticket") + 1

    def emails(order: str) -> list[str]:
        return [a.email for a in client.get(url, {"o": order}).context["cl"].result_list]

    assert emails(str(column)) == ["bounce@example.com", "ann@example.com"]  # bounced < opened
    assert emails(f"-{column}") == ["ann@example.com", "bounce@example.com"]
