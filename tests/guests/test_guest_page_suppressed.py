"""The guest's page says since when the suppression list stopped each of its sends, in one
query for the page however many sends were stopped (``comms.selectors.suppressions_began``)."""

import re
from datetime import timedelta

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.models import Membership
from comms.messages import Message
from comms.models import Delivery, Status, Suppression
from comms.services import messages_queue, suppressions_add
from guests.models import Attendee
from tests.conftest import guest, member_client

ADDRESS = "gone@example.com"


def _stopped_again(api, attendee: Attendee, template_id: str, times: int) -> None:
    """More sends to the guest's suppressed address (each stopped at dispatch)."""
    with api.capture(execute=True):
        messages_queue([Message(account_id=attendee.account_id, mode="live", recipient=ADDRESS,
                                template_id=template_id, owner=attendee,
                                context={"firstName": "Jane"}) for _ in range(times)])


def _page(client, attendee_id) -> tuple[str, list[str]]:
    """The page's ticket history as text, and the SQL of the queries that read suppressions."""
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse("admin:guests_attendee_change", args=[attendee_id]))
    assert response.status_code == 200
    html = response.content.decode().split('id="ticket-history"')[1]
    text = " ".join(re.sub(r"<[^>]+>", " ", html).split())
    return text, [q["sql"] for q in queries.captured_queries
                  if Suppression._meta.db_table in q["sql"]]


def test_each_stopped_send_says_since_when_in_one_query(api, keys, event_id, template_id,
                                                        settings):
    settings.HERALD_EMAIL_PROVIDER = "sandbox"
    suppressions_add(items=[{"account_id": keys.account.id, "address": ADDRESS,
                             "reason": "bounced"}])
    bounced = timezone.now() - timedelta(days=20)
    Suppression.objects.update(created_at=bounced)
    body = guest(event_id, template_id, email=ADDRESS)
    assert api.post("/checkin/v1/api/guest", body).status_code == 200
    attendee = Attendee.objects.get(id=body["id"])
    staff = member_client(keys.account, "sam", Membership.Role.SUPPORT)
    text, one = _page(staff, attendee.id)
    assert text.count(f"because it bounced on {bounced.day} ") == 1

    _stopped_again(api, attendee, template_id, 3)
    stopped = Delivery.objects.filter(owner_id=attendee.id, status=Status.SUPPRESSED)
    assert stopped.count() == 4
    text, four = _page(staff, attendee.id)
    assert text.count(f"because it bounced on {bounced.day} ") == 4
    assert len(four) == len(one)  # not one more query per stopped send
