"""The event as the staff's workplace: its tabs and buttons, a bulk send's exact progress (its
own deliveries, not the event's, done only once every one left the queue, each status a link
to exactly its deliveries), and funnels that count guests (each once, by their latest live
delivery; a sandbox rehearsal never counts), each figure a link to the matching guests."""

import importlib
import re
import uuid

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import Membership
from accounts.services import account_create
from comms.models import Delivery
from guests import bulk
from guests.admin_views import job_deliveries_url
from guests.imports import guest_import_create
from guests.models import BulkSend
from guests.services import attendee_create, event_create
from templates.services import template_create
from tests.conftest import bulk_send_done, member_client


@pytest.fixture
def live_sandbox(settings):
    """Live sends through the sandbox's lifecycle (bounce… bounces, others are opened)."""
    settings.HERALD_SANDBOX_DELAY_SECONDS = 0
    settings.HERALD_EMAIL_PROVIDER = "sandbox"


@pytest.fixture
def event(keys):
    return event_create(account=keys.account, name="Spring Gala")


@pytest.fixture
def ticket(keys):
    return template_create(account=keys.account, name="Ticket", subject="Your ticket",
                           text_body="Hi {{ firstName }}.")


def _member(account, username: str, role=Membership.Role.STAFF) -> Client:
    return member_client(account, username, role)


def _guests(keys, event, emails: list[str], mode: str = "live") -> None:
    for email in emails:
        attendee_create(account=keys.account, mode=mode, id=uuid.uuid4(), event_id=event.pk,
                        email=email)


def _recipients(response) -> list[str]:
    return sorted(d.recipient for d in response.context["cl"].queryset)


def test_progress_counts_this_jobs_deliveries_exactly_while_another_send_runs(
        keys, event, ticket, settings, monkeypatch, django_capture_on_commit_callbacks):
    """Job A sends in two batches of three guests; between them job B (same template, same
    event, same mode) sends to every guest. A's page counts A's rows only."""
    settings.HERALD_SANDBOX_DELAY_SECONDS = 0
    settings.HERALD_DISPATCH_BATCH_SIZE = 2  # one delivery per send task …
    monkeypatch.setattr(bulk, "BATCH", 3)  # … three guests per batch
    capture = django_capture_on_commit_callbacks
    emails = ["g1@example.com", "bounce-a@example.com", "g3@example.com", "g4@example.com",
              "bounce-b@example.com", "g6@example.com"]
    for n, email in enumerate(emails, 1):  # ids in this order: the order a job walks them
        attendee_create(account=keys.account, mode="live", id=uuid.UUID(int=n),
                        event_id=event.pk, email=email)
    with capture(execute=False):  # A's task is run step by step below
        job, _ = bulk.bulk_send_create(event=event, template_id=ticket.pk, audience="all",
                                       mode="test", token=uuid.uuid4(), user=None)
    BulkSend.objects.filter(pk=job.pk).update(status=BulkSend.Status.CREATING, total=6,
                                              started_at=job.created_at)  # the task took it
    with capture(execute=True):
        assert bulk._run_batch(job.pk)  # A's first batch: guests 1-3 (bounce-a bounces)
    other = bulk_send_done(event.pk, ticket.pk, audience="all", mode="test", capture=capture)
    assert (other.queued, other.skipped_failed) == (5, 1)  # B skips bounce-a
    with capture(execute=True):
        bulk.bulk_send_run(job_id=job.pk)  # A's second batch: guests 4-6 (bounce-b skipped)
    job.refresh_from_db()
    assert (job.status, job.queued, job.skipped_failed) == ("done", 5, 1)
    assert Delivery.objects.count() == 10

    client = _member(keys.account, "stella")
    progress = client.get(reverse("admin:guests_event_send_progress",
                                  args=[event.pk, job.pk])).json()
    assert progress["statuses"] == {"opened": 4, "bounced": 1}  # A's 5 rows, not B's
    assert progress["finished"] and progress["state"] == "Done"
    assert {name: bar[:2] for name, bar in progress["bars"].items()} == {
        "queued": [5, 5], "sent": [5, 5]}
    rows = {row["label"]: row for row in progress["rows"]}
    assert [(label, row["count"]) for label, row in rows.items()] == [("Opened", 4),
                                                                      ("Bounced", 1)]

    # "Bounced" links to exactly this job's bounced deliveries, in its mode.
    bounced = client.get(rows["Bounced"]["url"])
    assert _recipients(bounced) == ["bounce-a@example.com"]
    assert {d.pk for d in bounced.context["cl"].queryset} == set(
        bulk.bulk_send_deliveries(job=job).filter(status="bounced").values_list("pk", flat=True))
    page = client.get(reverse("admin:guests_event_send", args=[event.pk, job.pk]))
    html = page.content.decode()
    assert f'href="{rows["Bounced"]["url"].replace("&", "&amp;")}">Bounced</a>' in html
    text = re.sub(r'="[^"]*"', "", html)  # no ids in what the page says (links may hold them)
    assert "bulkSendId" not in text and str(job.pk) not in text


def test_progress_is_not_done_while_a_delivery_waits(keys, event, ticket,
                                                     django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    _guests(keys, event, ["a@example.com", "b@example.com"])
    with capture(execute=False):  # the deliveries are queued, no worker has sent them yet
        job, _ = bulk.bulk_send_create(event=event, template_id=ticket.pk, audience="all",
                                       mode="live", token=uuid.uuid4(), user=None)
        bulk.bulk_send_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == "done" and job.queued == 2  # every delivery created: not sent

    progress = bulk.bulk_send_progress(job=job)
    assert not progress["finished"] and progress["statuses"] == {"queued": 2}
    assert progress["text"].startswith("Prepared 2 of 2; 0 handed to the mail service")
    page = _member(keys.account, "stella").get(
        reverse("admin:guests_event_send", args=[event.pk, job.pk])).content.decode()
    assert "Sending…" in page and "data-finished" not in page


def test_delivery_list_filters_by_bulk_send_and_names_the_guest(
        keys, event, ticket, live_sandbox, django_capture_on_commit_callbacks):
    attendee_create(account=keys.account, mode="live", id=uuid.uuid4(), event_id=event.pk,
                    email="bea@example.com", first_name="Bea", last_name="Bounce")
    first = bulk_send_done(event.pk, ticket.pk, audience="all", mode="live",
                           capture=django_capture_on_commit_callbacks)
    bulk_send_done(event.pk, ticket.pk, audience="all", mode="live",
                   capture=django_capture_on_commit_callbacks)
    client = _member(keys.account, "stella")
    url = reverse("admin:comms_delivery_changelist")
    listed = client.get(url, {"bulk_send": str(first.pk)})
    assert [d.pk for d in listed.context["cl"].queryset] == list(
        bulk.bulk_send_deliveries(job=first).values_list("pk", flat=True))
    assert len(listed.context["cl"].queryset) == 1
    assert ">Bea Bounce</a>" in listed.content.decode()
    assert list(client.get(url, {"bulk_send": "not-an-id"}).context["cl"].queryset) == []
    # Another account's job id filters to nothing.
    theirs = _member(account_create(name="Other Org").account, "olga")
    assert list(theirs.get(url, {"bulk_send": str(first.pk)}).context["cl"].queryset) == []


def test_event_list_counts_guests_once_by_their_latest_live_delivery(
        keys, event, ticket, live_sandbox, django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    _guests(keys, event, ["a@example.com", "b@example.com", "bounce-c@example.com"])
    _guests(keys, event, ["rehearsal-only@example.com"], mode="test")
    for mode in ("test", "live", "live"):  # a rehearsal, then two live sends to everyone
        bulk_send_done(event.pk, ticket.pk, audience="all", mode=mode, capture=capture)
    live = Delivery.objects.filter(mode="live")
    assert live.count() == 5  # the bounced guest is skipped the second time (422 rule)

    client = _member(keys.account, "stella")
    response = client.get(reverse("admin:guests_event_changelist"))
    html = response.content.decode()
    funnel = next(e for e in response.context["cl"].result_list if e.pk == event.pk).funnel
    assert [funnel.guests, *map(funnel.count, ("sent", "delivered", "opened", "failed"))] == [
        3, 3, 2, 2, 1]  # a funnel: sent ⊇ delivered ⊇ opened; the bounce was sent
    guests = reverse("admin:guests_attendee_changelist")
    assert f'href="{guests}?event__id__exact={event.pk}">3</a>' in html
    bounced = f"{guests}?event__id__exact={event.pk}&amp;last_status=bounced"
    assert f'href="{bounced}">1</a>' in html
    for header in ("Guests", "Sent", "Delivered", "Opened", "Bounced or failed"):
        assert re.search(rf"<th[^>]*>.*?{header}.*?</th>", html, re.S), header
    assert "BOUNCED / OR / FAILED" not in html and "live bounced_or_failed" not in html
    assert "Select event to change" not in html and response.context["title"] == "Events"

    # The link's list is exactly the bounced guest (the guest list's own filter) …
    listed = client.get(bounced.replace("&amp;", "&"))
    assert [a.email for a in listed.context["cl"].queryset] == ["bounce-c@example.com"]
    # … and "Sent" lists the three, through the same filter given several statuses.
    sent = f"{guests}?event__id__exact={event.pk}&amp;last_status=opened,bounced"
    assert f'href="{sent}">3</a>' in html
    listed = client.get(sent.replace("&amp;", "&"))
    assert len(listed.context["cl"].queryset) == 3


def test_event_page_has_its_tabs_and_buttons_and_support_sees_no_buttons(
        keys, event, ticket, live_sandbox, django_capture_on_commit_callbacks):
    _guests(keys, event, ["a@example.com", "bounce-b@example.com"])
    bulk_send_done(event.pk, ticket.pk, audience="all", mode="live",
                   capture=django_capture_on_commit_callbacks)
    staff = _member(keys.account, "stella")
    page = staff.get(reverse("admin:guests_event_change", args=[event.pk])).content.decode()
    tabs = page[page.index('id="tabs-items"'):]
    tabs = tabs[:tabs.index("</nav>")]
    assert re.findall(r">\s*(\w+)\s*</a>", tabs) == ["Overview", "Guests", "Sends",
                                                     "Deliveries", "Dashboard", "Door"]
    for url in (reverse("admin:guests_event_sends", args=[event.pk]),
                reverse("admin:guests_event_dashboard", args=[event.pk]),
                f"?event__id__exact={event.pk}", f"?attendee__event__id__exact={event.pk}"):
        assert url in tabs
    for button, url in (("Import guests", "admin:guests_event_import_upload"),
                        ("Send tickets", "admin:guests_event_send_form")):
        assert re.search(rf'href="{reverse(url, args=[event.pk])}"[^>]*>.*?{button}', page,
                         re.S), button

    sends = staff.get(reverse("admin:guests_event_sends", args=[event.pk]))
    assert sends.status_code == 200 and 'id="tabs-items"' in sends.content.decode()
    html = sends.content.decode()
    job = BulkSend.objects.get()
    assert "Ticket" in html and "Done" in html
    bounced = job_deliveries_url(job, "bounced").replace("&", "&amp;")
    assert f'href="{bounced}">Bounced: 1</a>' in html
    deliveries = staff.get(reverse("admin:comms_delivery_changelist"),
                           {"attendee__event__id__exact": str(event.pk)})
    assert 'id="tabs-items"' in deliveries.content.decode()
    assert _recipients(deliveries) == ["a@example.com", "bounce-b@example.com"]

    support = _member(keys.account, "sam", role=Membership.Role.SUPPORT)
    page = support.get(reverse("admin:guests_event_change", args=[event.pk])).content.decode()
    assert "Send tickets" not in page and 'id="tabs-items"' in page
    assert support.get(reverse("admin:guests_event_dashboard", args=[event.pk])
                       ).status_code == 200
    other = _member(account_create(name="Other Org").account, "olga")
    for name in ("admin:guests_event_sends", "admin:guests_event_dashboard"):
        assert other.get(reverse(name, args=[event.pk])).status_code == 404


def test_dashboard_counts_guests_not_rehearsals_and_links_each_figure(
        keys, event, ticket, live_sandbox, django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    _guests(keys, event, ["a@example.com", "bounce-b@example.com", "drop-c@example.com"])
    for mode in ("test", "test", "live"):
        bulk_send_done(event.pk, ticket.pk, audience="all", mode=mode, capture=capture)
    _guests(keys, event, ["never@example.com"])  # added after the sends
    page = _member(keys.account, "stella").get(
        reverse("admin:guests_event_dashboard", args=[event.pk]))
    cards = {card["title"]: card for card in page.context["cards"]}
    assert {title: card["count"] for title, card in cards.items()} == {
        "Guests": 4, "Waiting": 0, "Sent": 3, "Delivered": 1, "Opened": 1,
        "Bounced or failed": 2}
    failed = {part["label"]: part["url"] for part in cards["Bounced or failed"]["parts"]}
    guests = reverse("admin:guests_attendee_changelist")
    assert failed == {
        "Bounced": f"{guests}?event__id__exact={event.pk}&last_status=bounced",
        "Not delivered: the mail provider refused it":
            f"{guests}?event__id__exact={event.pk}&last_status=dropped"}
    html = page.content.decode()
    assert "1 guest never sent a ticket." in html
    assert re.search(r'<svg id="chart"[^>]*viewBox="-?\d+ 0 \d+ \d+"[^>]*width:100%', html)


def test_sends_list_says_sending_until_every_ticket_left_and_links_each_outcome(
        keys, event, ticket, live_sandbox, django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    _guests(keys, event, ["a@example.com", "bounce-b@example.com"])
    sent = bulk_send_done(event.pk, ticket.pk, audience="all", mode="live", capture=capture)
    with capture(execute=False):  # its deliveries exist, no worker has sent them yet
        waiting, _ = bulk.bulk_send_create(event=event, template_id=ticket.pk, audience="all",
                                           mode="test", token=uuid.uuid4(), user=None)
        bulk.bulk_send_run(job_id=waiting.pk)
    client = _member(keys.account, "stella")
    response = client.get(reverse("admin:guests_bulksend_changelist"))
    html = response.content.decode()
    rows = {job.pk: job.progress for job in response.context["cl"].result_list}
    waiting.refresh_from_db()
    assert waiting.status == "done" and waiting.queued  # the job's own word …
    assert rows[waiting.pk]["state"] == "Sending…"  # … is not what the list says
    assert rows[sent.pk]["state"] == "Done"
    assert rows[waiting.pk]["statuses"] == {"queued": waiting.queued}
    bounced = job_deliveries_url(sent, "bounced").replace("&", "&amp;")
    assert f'href="{bounced}">Bounced: 1</a>' in html
    assert "sandbox rehearsal" in html and ">open<" not in html


def test_deliveries_of_a_send_made_before_the_tag_are_tagged_by_the_migration(
        keys, event, ticket, live_sandbox, django_capture_on_commit_callbacks):
    from django.apps import apps

    tagging = importlib.import_module("guests.migrations.0007_tag_bulk_send_deliveries")
    _guests(keys, event, ["a@example.com", "bounce-b@example.com"])
    job = bulk_send_done(event.pk, ticket.pk, audience="all", mode="live",
                         capture=django_capture_on_commit_callbacks)
    # As a job queued before deliveries carried its id: their refs without it; and a later
    # delivery of the same template to the guest, outside the job's time, is not the job's.
    Delivery.objects.update(refs={"attendeeId": "x", "eventId": str(event.pk)})
    assert bulk.bulk_send_statuses(job=job) == {}
    tagging.tag_deliveries(apps, None)
    assert bulk.bulk_send_statuses(job=job) == {"opened": 1, "bounced": 1}
    assert bulk.bulk_send_statuses_many(jobs=[job]) == {job.pk: {"opened": 1, "bounced": 1}}
    assert bulk.bulk_send_progress(job=job)["finished"]
    tagging.tag_deliveries(apps, None)  # again: nothing changes
    assert bulk.bulk_send_statuses(job=job) == {"opened": 1, "bounced": 1}


def test_send_form_offers_the_template_the_event_was_last_sent_or_the_only_one(
        keys, event, ticket, django_capture_on_commit_callbacks):
    client = _member(keys.account, "stella")
    url = reverse("admin:guests_event_send_form", args=[event.pk])

    def chosen() -> object:
        return client.get(url).context["form"]["template"].value()

    assert chosen() == ticket.pk  # the account's only email template
    reminder = template_create(account=keys.account, name="Reminder", subject="s", text_body="t")
    assert chosen() is None  # two: the staff choose
    _guests(keys, event, ["a@example.com"])
    bulk_send_done(event.pk, reminder.pk, audience="all", mode="test",
                   capture=django_capture_on_commit_callbacks)
    assert chosen() == reminder.pk  # the one this event was last sent


def test_imports_list_links_each_import_to_its_page(keys, event,
                                                     django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        upload = guest_import_create(event=event, user=None, filename="guests.csv",
                                     data=b"firstName,lastName,email\nAda,Lovelace,a@example.com\n")
    html = _member(keys.account, "stella").get(
        reverse("admin:guests_guestimport_changelist")).content.decode()
    page = reverse("admin:guests_event_import", args=[event.pk, upload.pk])
    assert f'href="{page}"' in html and "guests.csv" in html
    assert "Guest imports" in html and ">open<" not in html
