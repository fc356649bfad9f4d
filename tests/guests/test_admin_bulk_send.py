"""Bulk send of a template to an event's guests from the admin: preview, confirm once (a
double click sends once), batched SendGrid requests, the 422 rule and suppressions."""

import math
import re
import uuid

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import Membership
from accounts.services import account_create, membership_add
from comms.models import Delivery
from guests.imports import guest_import_confirm, guest_import_create
from guests.models import Attendee, BulkSend, GuestImport
from guests.services import attendee_create, event_create
from templates.services import template_create
from tests.comms.factories import suppression_add
from tests.conftest import guest


def _member(account, username: str, role=Membership.Role.STAFF, csrf: bool = False) -> Client:
    membership = membership_add(account=account, username=username, role=role)
    client = Client(enforce_csrf_checks=csrf)
    client.force_login(membership.user)
    return client


def _field(response, name: str) -> str:
    return re.search(rf'name="{name}" value="([^"]+)"', response.content.decode()).group(1)


def _guests(event, n: int, capture) -> None:
    """n guests, imported the way staff do it (the CSV import services)."""
    rows = "".join(f"{uuid.uuid4()},G{i},Guest,g{i}@example.com\n" for i in range(n))
    with capture(execute=True):
        guest_import = guest_import_create(event=event, user=None, filename="g.csv",
                                           data=("id,firstName,lastName,email\n" + rows).encode())
    with capture(execute=True):
        guest_import_confirm(guest_import=GuestImport.objects.get(pk=guest_import.pk))
    assert Attendee.objects.filter(event=event).count() == n


def _preview(client, event_id, template_id, audience="all", mode="live", **extra):
    url = reverse("admin:guests_event_send_form", args=[event_id])
    return client.post(url, {"template": template_id, "audience": audience, "mode": mode,
                             "_preview": "1", **extra})


def _confirm(client, event_id, preview, capture, **extra):
    url = reverse("admin:guests_event_send_form", args=[event_id])
    data = {name: _field(preview, name) for name in ("template", "audience", "mode", "token")}
    with capture(execute=True):
        return client.post(url, {**data, "_confirm": "1", **extra})


def _send(client, event_id, template_id, capture, **fields) -> BulkSend:
    response = _confirm(client, event_id, _preview(client, event_id, template_id, **fields),
                        capture)
    assert response.status_code == 302, response.content
    return BulkSend.objects.get(pk=response["Location"].rstrip("/").rsplit("/", 1)[1])


@pytest.fixture
def event(keys):
    return event_create(account=keys.account, name="Spring Gala")


@pytest.fixture
def ticket(keys):
    return template_create(account=keys.account, name="Ticket",
                           subject="Your ticket, {{ firstName }}",
                           text_body="Hi {{ firstName }}, see you at {{ event.name }}.")


def test_bulk_send_batches_personalizations_and_a_double_click_sends_once(
        keys, event, ticket, sendgrid, settings, django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    settings.HERALD_DISPATCH_BATCH_SIZE = 1000
    n = 2100
    _guests(event, n, capture)
    client = _member(keys.account, "stella", csrf=True)
    form = client.get(reverse("admin:guests_event_send_form", args=[event.pk]))
    assert form.status_code == 200 and "Ticket" in form.content.decode()
    token = {"csrfmiddlewaretoken": _field(form, "csrfmiddlewaretoken")}
    assert _preview(client, event.pk, ticket.pk).status_code == 403  # CSRF enforced
    preview = _preview(client, event.pk, ticket.pk, **token)
    assert f"To send now: <strong>{n}</strong>" in preview.content.decode()
    assert not Delivery.objects.exists()

    first = _confirm(client, event.pk, preview, capture, **token)
    again = _confirm(client, event.pk, preview, capture, **token)  # the double click
    assert first.status_code == again.status_code == 302
    assert first["Location"] == again["Location"]
    job = BulkSend.objects.get()
    assert (job.status, job.total, job.queued) == ("done", n, n)

    requests = [len(m.body["personalizations"]) for m in sendgrid.messages]
    assert len(requests) == math.ceil(n / 1000) and max(requests) <= 1000
    recipients = [r.email for r in sendgrid.recipients()]
    assert len(recipients) == len(set(recipients)) == n
    assert Delivery.objects.filter(status="sent").count() == n
    body = sendgrid.messages[0].body["personalizations"][0]["substitutions"]
    assert body["%herald:subject%"].startswith("Your ticket, G")

    progress = client.get(reverse("admin:guests_event_send_progress",
                                  args=[event.pk, job.pk])).json()
    bars = {name: bar[:2] for name, bar in progress["bars"].items()}
    assert progress["finished"] and bars == {"queued": [n, n], "sent": [n, n]}
    assert progress["statuses"] == {"sent": n} and progress["state"] == "Done"
    assert [(row["label"], row["count"]) for row in progress["rows"]] == [
        ("Sent to the mail provider", n)]
    page = client.get(first["Location"])
    assert page.status_code == 200 and "progress" in page.content.decode()


def test_audiences_and_the_skip_rules(keys, event, ticket, sandbox_api,
                                      django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    for email in ("ok@example.com", "bounce@example.com"):  # sandbox: delivered, bounced
        sandbox_api.post("/checkin/v1/api/guest", guest(str(event.pk), str(ticket.pk),
                                                        email=email))
    for email in ("new@example.com", "quiet@example.com"):
        attendee_create(account=keys.account, mode="test", id=uuid.uuid4(),
                        event_id=event.pk, email=email)
    suppression_add(account_id=keys.account.pk, address="Quiet@example.com",
                    reason="unsubscribed")
    client = _member(keys.account, "stella")

    preview = _preview(client, event.pk, ticket.pk, audience="never_sent", mode="test")
    assert preview.context["counts"] == {"matching": 2, "failed": 0, "suppressed": 1,
                                         "to_send": 1}
    job = _send(client, event.pk, ticket.pk, capture, audience="never_sent", mode="test")
    assert (job.total, job.queued, job.skipped_suppressed, job.skipped_failed) == (2, 1, 1, 0)
    assert Delivery.objects.filter(recipient="new@example.com").count() == 1

    job = _send(client, event.pk, ticket.pk, capture, audience="last_failed", mode="test")
    assert (job.total, job.queued, job.skipped_failed) == (1, 0, 1)  # bounced: 422 rule

    job = _send(client, event.pk, ticket.pk, capture, audience="all", mode="test")
    assert (job.total, job.queued, job.skipped_failed, job.skipped_suppressed) == (4, 2, 1, 1)
    assert Delivery.objects.filter(recipient="bounce@example.com").count() == 1
    assert Delivery.objects.filter(recipient="ok@example.com").count() == 2


def test_other_accounts_get_404_support_403_and_templates_are_scoped(
        keys, event, ticket, django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    attendee_create(account=keys.account, mode="live", id=uuid.uuid4(), event_id=event.pk,
                    email="a@example.com")
    job = _send(_member(keys.account, "stella"), event.pk, ticket.pk, capture)
    other_keys = account_create(name="Other Org")
    other = _member(other_keys.account, "olga")
    assert other.get(reverse("admin:guests_event_send_form", args=[event.pk])
                     ).status_code == 404
    for name in ("admin:guests_event_send", "admin:guests_event_send_progress"):
        assert other.get(reverse(name, args=[event.pk, job.pk])).status_code == 404
    assert _preview(other, event.pk, ticket.pk).status_code == 404

    support = _member(keys.account, "sam", role=Membership.Role.SUPPORT)
    assert support.get(reverse("admin:guests_event_send_form", args=[event.pk])
                       ).status_code == 403
    assert _preview(support, event.pk, ticket.pk).status_code == 403
    assert support.get(reverse("admin:guests_event_send", args=[event.pk, job.pk])
                       ).status_code == 200

    # Another account's template is not a choice.
    theirs = template_create(account=other_keys.account, name="Theirs", subject="s",
                             text_body="t")
    response = _preview(_member(keys.account, "stella"), event.pk, theirs.pk)
    assert response.status_code == 200 and "Select a valid choice" in response.content.decode()
    assert BulkSend.objects.count() == 1


def test_an_unverified_account_cannot_bulk_send(keys, event, ticket,
                                                django_capture_on_commit_callbacks):
    keys.account.verified_for_sending = False
    keys.account.save()
    client = _member(keys.account, "stella")
    preview = _preview(client, event.pk, ticket.pk)
    response = _confirm(client, event.pk, preview, django_capture_on_commit_callbacks)
    assert response.status_code == 200 and "not verified" in response.content.decode()
    assert not BulkSend.objects.exists()
