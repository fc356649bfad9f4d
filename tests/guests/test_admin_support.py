"""Support's routine in the admin: find a guest, resend the ticket, see the 422 rule."""

import pytest
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from accounts.models import Membership
from accounts.services import membership_add
from comms.models import Delivery
from tests.conftest import guest


@pytest.fixture
def live_sandbox(settings):
    """Live sends through the sandbox's lifecycle (bounce@ bounces, others are opened): live
    figures without a real provider."""
    settings.HERALD_SANDBOX_DELAY_SECONDS = 0
    settings.HERALD_EMAIL_PROVIDER = "sandbox"


def _support(keys) -> Client:
    membership = membership_add(account=keys.account, username="sam",
                                role=Membership.Role.SUPPORT)
    client = Client()
    client.force_login(membership.user)
    return client


def _act(client, url, action, pks, capture):
    with capture(execute=True):
        response = client.post(url, {"action": action, "_selected_action": pks}, follow=True)
    assert response.status_code == 200
    return [str(m) for m in get_messages(response.wsgi_request)]


def test_resend_ticket_from_a_delivery_and_from_an_attendee(api, live_sandbox, event_id,
                                                            template_id,
                                                            django_capture_on_commit_callbacks):
    ok = guest(event_id, template_id, email="jane@example.com")
    bounced = guest(event_id, template_id, email="bounce@example.com")
    api.post("/checkin/v1/api/guest", ok)
    api.post("/checkin/v1/api/guest", bounced)
    client = _support(api.keys)
    first = Delivery.objects.get(owner_id=ok["id"])

    said = _act(client, reverse("admin:comms_delivery_changelist"), "resend_deliveries",
                [str(first.pk)], django_capture_on_commit_callbacks)
    assert any("Resent to jane@example.com" in m for m in said)
    assert Delivery.objects.filter(owner_id=ok["id"]).count() == 2

    said = _act(client, reverse("admin:guests_attendee_changelist"), "resend_attendees",
                [bounced["id"]], django_capture_on_commit_callbacks)
    assert any("Not resent to bounce@example.com: We can't send to this address: it bounced "
               "on" in m and "(the mailbox does not exist)" in m
               and "550 5.1.1 No such user" in m for m in said)
    assert Delivery.objects.filter(owner_id=bounced["id"]).count() == 1


def test_attendee_filter_by_last_delivery_status(api, live_sandbox, event_id, template_id):
    api.post("/checkin/v1/api/guest", guest(event_id, template_id, email="a@example.com"))
    api.post("/checkin/v1/api/guest", guest(event_id, template_id, email="bounce@example.com"))
    client = _support(api.keys)
    response = client.get(reverse("admin:guests_attendee_changelist") + "?last_status=bounced")
    assert [a.email for a in response.context["cl"].queryset] == ["bounce@example.com"]


def test_event_changelist_shows_attendees_and_the_live_delivery_funnel(api, sandbox_api,
                                                                       live_sandbox, event_id,
                                                                       template_id):
    live = [guest(event_id, template_id, email=email)
            for email in ("a@example.com", "b@example.com", "bounce@example.com")]
    for body in live:
        api.post("/checkin/v1/api/guest", body)
    api.post("/checkin/v1/api/guest", guest(event_id, email="no-send@example.com"))
    # Rehearsals with the test key: a guest of its own and a live guest's id sent again. They
    # are not live traffic: neither the guests nor the deliveries count.
    sandbox_api.post("/checkin/v1/api/guest",
                     guest(event_id, template_id, email="bounce-rehearsal@example.com"))
    sandbox_api.post("/checkin/v1/api/guest", live[0])
    rehearsed = Delivery.objects.filter(mode="test").values_list("recipient", "status")
    assert sorted(rehearsed) == [("a@example.com", "opened"),
                                 ("bounce-rehearsal@example.com", "bounced")]
    client = _support(api.keys)
    response = client.get(reverse("admin:guests_event_changelist"))
    [event] = response.context["cl"].result_list
    assert event.funnel.guests == 4  # the live guests, the one never sent a ticket too
    assert (event.funnel.count("opened"), event.funnel.count("failed")) == (2, 1)
    page = response.content.decode()  # the page says what it counts
    assert "sandbox rehearsals (test key) are not counted" in page


def test_template_change_page_previews_with_sample_data_in_a_sandboxed_iframe(api):
    from templates.services import template_create

    template = template_create(account=api.keys.account, name="T",
                               subject="Ticket for {{ event.name }}",
                               html_body="<p>Hi {{ firstName }}<script>x()</script></p>",
                               text_body="Hi {{ firstName }}")
    broken = template_create(account=api.keys.account, name="B", subject="s",
                             text_body="{{ 1 / 0 }}")
    client = _support(api.keys)
    page = client.get(reverse("admin:templates_messagetemplate_change", args=[template.pk]))
    html = page.content.decode()
    assert "Ticket for Sample Event" in html
    assert '<iframe sandbox=""' in html and "&lt;p&gt;Hi Jane" in html  # escaped srcdoc
    page = client.get(reverse("admin:templates_messagetemplate_change", args=[broken.pk]))
    assert "Does not render" in page.content.decode()
