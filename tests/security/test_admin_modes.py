"""The admin's figures and histories say which key mode they show: live by default, a test
key's sandbox rehearsals on their own and labelled as such, never mixed into live ones."""

import re
import uuid

import pytest
from django.contrib.auth import get_user_model
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from accounts.models import Membership
from accounts.services import membership_add
from comms.models import Delivery, Suppression
from guests import bulk
from guests.models import Attendee, BulkSend, Event
from tests.conftest import Api, guest, make_client


@pytest.fixture
def live_sandbox(settings):
    """Live sends through the sandbox's lifecycle (bounce@ bounces, others are opened)."""
    settings.HERALD_SANDBOX_DELAY_SECONDS = 0
    settings.HERALD_EMAIL_PROVIDER = "sandbox"


def _staff(keys, role=Membership.Role.SUPPORT) -> Client:
    membership = membership_add(account=keys.account, username=f"u-{role}", role=role)
    client = Client()
    client.force_login(membership.user)
    return client


def _listed(response) -> list:
    return list(response.context["cl"].queryset)


def test_deliveries_are_live_by_default_and_the_sandbox_on_its_own(
        api, sandbox_api, live_sandbox, event_id, template_id,
        django_capture_on_commit_callbacks):
    api.post("/checkin/v1/api/guest", guest(event_id, template_id, email="live@example.com"))
    rehearsal = guest(event_id, template_id, email="rehearsal@example.com")
    sandbox_api.post("/checkin/v1/api/guest", rehearsal)
    client = _staff(api.keys)
    url = reverse("admin:comms_delivery_changelist")

    live = client.get(url)
    assert [d.recipient for d in _listed(live)] == ["live@example.com"]
    page = live.content.decode()
    assert "Live deliveries: test-key rehearsals are under Mode: Sandbox" in page
    assert "Sandbox (test key)" in page  # the sidebar's way to the rehearsals

    sandbox = client.get(url, {"mode": "test"})
    assert [d.recipient for d in _listed(sandbox)] == ["rehearsal@example.com"]
    assert "Sandbox deliveries (test-key rehearsals)" in sandbox.content.decode()
    # Other filters keep the mode chosen: never a mix of both.
    assert [d.recipient for d in _listed(client.get(url, {"mode": "test",
                                                          "status__exact": "opened"}))] == [
        "rehearsal@example.com"]
    assert _listed(client.get(url, {"status__exact": "opened"}))[0].mode == "live"

    # A search of the live list that only rehearsals match says where they are, and back.
    searched = client.get(url, {"q": "rehearsal@example.com"})
    assert _listed(searched) == []
    [said] = [str(m) for m in get_messages(searched.wsgi_request)]
    assert said == ("Also matching this search among sandbox (test-key) deliveries: 1 — "
                    '<a href="?mode=test&amp;q=rehearsal%40example.com">show them</a>.')
    assert said in searched.content.decode()
    searched = client.get(url, {"q": "live@example.com", "mode": "test"})
    assert [str(m) for m in get_messages(searched.wsgi_request)] == [
        "Also matching this search among live deliveries: 1 — "
        '<a href="?mode=live&amp;q=live%40example.com">show them</a>.']
    assert [str(m) for m in get_messages(client.get(url, {"q": "nobody"}).wsgi_request)] == []

    # Support resends a rehearsal from the sandbox view: a sandbox send again.
    previous = Delivery.objects.get(recipient="rehearsal@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"{url}?mode=test", {"action": "resend_deliveries",
                                                     "_selected_action": [str(previous.pk)]},
                               follow=True)
    said = [str(m) for m in get_messages(response.wsgi_request)]
    assert any("Resent to rehearsal@example.com" in m for m in said)
    assert list(Delivery.objects.filter(owner_id=rehearsal["id"]).values_list(
        "mode", flat=True)) == ["test", "test"]


def test_suppressions_show_their_mode_live_by_default(api, sandbox_api, live_sandbox,
                                                      event_id, template_id):
    api.post("/checkin/v1/api/guest", guest(event_id, template_id, email="bounce@example.com"))
    sandbox_api.post("/checkin/v1/api/guest",
                     guest(event_id, template_id, email="bounce-test@example.com"))
    assert sorted(Suppression.objects.values_list("address", "mode")) == [
        ("bounce-test@example.com", "test"), ("bounce@example.com", "live")]
    client = _staff(api.keys)
    url = reverse("admin:comms_suppression_changelist")

    live = client.get(url)
    assert [s.address for s in _listed(live)] == ["bounce@example.com"]
    page = live.content.decode()
    assert "Live suppressions" in page and "column-mode" in page
    sandbox = client.get(url, {"mode": "test"})
    assert [s.address for s in _listed(sandbox)] == ["bounce-test@example.com"]
    assert "Sandbox suppressions" in sandbox.content.decode()
    change = client.get(reverse("admin:comms_suppression_change",
                                args=[_listed(sandbox)[0].pk])).content.decode()
    assert re.search(r">\s*Mode:?\s*</label>.*?class=\"readonly[^>]*>\s*Test\s*</div>", change,
                     re.S)


def test_attendees_filter_on_the_last_live_send_and_the_last_rehearsal_apart(
        api, sandbox_api, event_id, template_id, settings):
    settings.HERALD_SANDBOX_DELAY_SECONDS = 0
    # Live through the outbox (sent); then a test key rehearses the same guest: it bounces.
    body = guest(event_id, template_id, email="bounce@example.com")
    api.post("/checkin/v1/api/guest", body)
    sandbox_api.post("/checkin/v1/api/guest", body)
    rehearsed = guest(event_id, template_id, email="bounce-only@example.com")
    sandbox_api.post("/checkin/v1/api/guest", rehearsed)
    assert sorted(Delivery.objects.filter(owner_id=body["id"]).values_list(
        "mode", "status")) == [("live", "sent"), ("test", "bounced")]
    client = _staff(api.keys)
    url = reverse("admin:guests_attendee_changelist")

    def emails(**params) -> list[str]:
        return sorted(a.email for a in _listed(client.get(url, params)))

    assert emails(last_status="bounced") == []  # the later rehearsal is not its last send
    assert emails(last_status="sent") == ["bounce@example.com"]
    assert emails(last_test_status="bounced") == ["bounce-only@example.com",
                                                  "bounce@example.com"]
    page = client.get(url).content.decode()
    assert "last live delivery status" in page
    assert "last sandbox (test key) delivery status" in page
    # Which key added each guest, as a column and a filter.
    assert emails(mode__exact="test") == ["bounce-only@example.com"]
    assert "sandbox rehearsal" in page and "added by" in page.lower()
    assert Attendee.objects.get(id=rehearsed["id"]).mode == "test"


def test_dashboard_says_it_counts_live_sends(api):
    page = _staff(api.keys).get(reverse("admin:comms_dashboard_changelist")).content.decode()
    assert "Dashboard: live sends" in page
    assert "Test-key (sandbox) rehearsals are not counted." in page


def test_bulk_send_pages_name_the_mode(api, live_sandbox, event_id, template_id,
                                       django_capture_on_commit_callbacks):
    api.post("/checkin/v1/api/guest", guest(event_id, email="a@example.com"))
    event = Event.objects.get(id=event_id)
    owner = _staff(api.keys, Membership.Role.OWNER)
    jobs = {}
    for mode in ("test", "live"):
        with django_capture_on_commit_callbacks(execute=True):
            jobs[mode], _ = bulk.bulk_send_create(event=event, template_id=template_id,
                                                  audience="all", mode=mode,
                                                  token=uuid.uuid4(), user=None)
    assert BulkSend.objects.filter(status="done").count() == 2

    form = owner.get(reverse("admin:guests_event_send_form", args=[event_id])).content.decode()
    recent = form[form.index("Recent sends"):]
    assert "<th>Mode</th>" in recent
    assert "<td>sandbox rehearsal</td>" in recent and "<td>live</td>" in recent
    detail = owner.get(reverse("admin:guests_event_send", args=[event_id, jobs["test"].pk]))
    assert "Deliveries by status (sandbox rehearsal)" in detail.content.decode()
    detail = owner.get(reverse("admin:guests_event_send", args=[event_id, jobs["live"].pk]))
    assert "Deliveries by status (live)" in detail.content.decode()
    confirm = owner.post(reverse("admin:guests_event_send_form", args=[event_id]), {
        "template": template_id, "audience": "all", "mode": "test", "_preview": "1"})
    assert "(sandbox rehearsal)" in confirm.content.decode()

    history = owner.get(reverse("admin:guests_bulksend_changelist"), {"mode__exact": "test"})
    assert [job.pk for job in _listed(history)] == [jobs["test"].pk]



def test_dashboard_ranks_and_lists_by_live_sends_only(api, sandbox_api, other_api, live_sandbox,
                                                      event_id, template_id,
                                                      django_capture_on_commit_callbacks):
    api.post("/checkin/v1/api/guest", guest(event_id, template_id, email="ok@example.com"))
    rehearsed = api.post("/checkin/v1/api/event", {"name": "Rehearsal Ball"}).json()["id"]
    for n in range(3):  # a busy rehearsal: more sandbox sends than the live event's
        sandbox_api.post("/checkin/v1/api/guest",
                         guest(rehearsed, template_id, email=f"r{n}@example.com"))
    # Another account that only ever rehearsed: no section of its own, even for a superuser.
    theirs = Api(make_client(other_api.keys, test_mode=True), other_api.keys,
                 django_capture_on_commit_callbacks)
    their_template = other_api.post("/comms/v1/api/comms/template", {
        "name": "T", "subject": "S", "textBody": "B"}).json()["id"]
    their_event = other_api.post("/checkin/v1/api/event", {"name": "Their Gala"}).json()["id"]
    theirs.post("/checkin/v1/api/guest", guest(their_event, their_template))
    url = reverse("admin:comms_dashboard_changelist")

    page = _staff(api.keys).get(url).content.decode()
    assert "Event: Spring Gala" in page and "Rehearsal Ball" not in page
    root = Client()
    root.force_login(get_user_model().objects.create_superuser("root", password="pw-1234567"))
    page = root.get(url).content.decode()
    assert "Account: Acme Events" in page
    assert "Other Org" not in page and "Their Gala" not in page
