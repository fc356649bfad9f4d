"""An event's reminders in a real browser: staff add "24 hours before the start" on the event's
page, the guests' reminders are scheduled; the page fits a phone."""

import uuid
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.models import Membership
from accounts.services import account_create, membership_add
from comms.models import Delivery, Status
from guests.models import ReminderRule
from guests.services import attendee_create, event_create
from templates.services import template_create
from tests.browser.conftest import PASSWORD, login
from tests.browser.screens import assert_fits, screenshot

pytestmark = pytest.mark.browser


def test_staff_add_a_reminder_on_the_event_page(page):
    account = account_create(name="Acme Events").account
    membership_add(account=account, username="stella", role=Membership.Role.STAFF,
                   password=PASSWORD)
    start = (timezone.now() + timedelta(days=5)).replace(second=0, microsecond=0)
    event = event_create(account=account, name="Spring Gala", starts_at=start,
                         time_zone="Europe/Paris")
    template = template_create(account=account, name="Day-before reminder",
                               subject="Tomorrow", text_body="See you, {{ firstName }}")
    guest = attendee_create(account=account, mode="live", id=uuid.uuid4(),
                            event_id=event.pk, email="ann@example.com",
                            first_name="Ann").attendee
    login(page, "stella")
    page.goto(reverse("admin:guests_event_change", args=[event.pk]))
    page.get_by_text("Add another reminder").click()
    page.select_option('select[name="reminders-0-template"]', str(template.pk))
    page.fill('input[name="reminders-0-amount"]', "24")
    page.select_option('select[name="reminders-0-unit"]', "hours")
    page.select_option('select[name="reminders-0-direction"]', "before")
    screenshot(page, "event-reminders")
    page.click('button[name="_continue"]')
    page.wait_for_load_state()
    rule = ReminderRule.objects.get()
    assert rule.offset_minutes == -1440
    reminder = Delivery.objects.get(owner_id=guest.pk, refs__reminderRuleId=str(rule.pk))
    assert reminder.status == Status.SCHEDULED
    assert reminder.next_attempt_at == start - timedelta(days=1)
    # Shown back as typed: 24 hours is a day.
    assert page.input_value('input[name="reminders-0-amount"]') == "1"
    assert page.input_value('select[name="reminders-0-unit"]') == "days"
    for width in (1440, 390):
        page.set_viewport_size({"width": width, "height": 900})
        assert_fits(page)
