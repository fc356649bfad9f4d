"""Spec 000's two-step send and every row of its 422 table, driven by the sandbox lifecycle."""

import re
import uuid

import pytest

from comms.models import Delivery
from tests.conftest import bulk_send_done, guest


def _create(api, event_id, template_id, email):
    body = guest(event_id, template_id, email=email)
    response = api.post("/checkin/v1/api/guest", body)
    assert response.status_code == 200, response.content
    return body["id"], response.json()["attendeeInvitationId"]


def _resend(api, attendee_id, template_id, correlation="resend-2026-0042"):
    return api.post("/comms/v1/api/comms/send", {
        "attendeeId": attendee_id, "templateId": template_id, "correlationId": correlation})


def test_first_send_to_existing_attendee(sandbox_api, event_id, template_id):
    body = guest(event_id, email="first@example.com")
    sandbox_api.post("/checkin/v1/api/guest", body)
    response = _resend(sandbox_api, body["id"], template_id)
    assert response.status_code == 200
    data = response.json()
    assert data["status"] == "queued"
    assert Delivery.objects.get(id=data["attendeeInvitationId"]).status == "opened"


@pytest.mark.parametrize("email,final", [
    ("jane@example.com", "opened"),  # delivered successfully: "I lost my ticket"
    ("transient@example.com", "failed"),  # transient API-side failure: retry is sensible
])
def test_resend_allowed(sandbox_api, event_id, template_id, email, final):
    attendee_id, first = _create(sandbox_api, event_id, template_id, email)
    assert Delivery.objects.get(id=first).status == final
    response = _resend(sandbox_api, attendee_id, template_id)
    assert response.status_code == 200
    new = response.json()["attendeeInvitationId"]
    assert new != first
    assert Delivery.objects.get(id=new).correlation_id == "resend-2026-0042"


@pytest.mark.parametrize("email,failure_type,reason", [
    ("bounce@example.com", "bounced", "550 5.1.1 No such user"),
    ("drop@example.com", "dropped", "Bounced Address"),
    ("spam@example.com", "spam_reported", "Recipient reported spam"),
    ("unsub@example.com", "unsubscribed", "Recipient unsubscribed"),
])
def test_resend_after_permanent_failure_is_422(sandbox_api, event_id, template_id, email,
                                               failure_type, reason):
    attendee_id, first = _create(sandbox_api, event_id, template_id, email)
    assert Delivery.objects.get(id=first).status == failure_type
    response = _resend(sandbox_api, attendee_id, template_id)
    assert response.status_code == 422
    body = response.json()
    assert list(body) == ["error", "message", "failureType", "lastFailureAt",
                          "lastFailureReason"]
    assert body["error"] == "previous_send_permanently_failed"
    assert body["failureType"] == failure_type
    assert body["lastFailureReason"] == reason
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", body["lastFailureAt"])
    assert Delivery.objects.filter(owner_id=attendee_id).count() == 1


def test_bounce_message_matches_spec(sandbox_api, event_id, template_id):
    attendee_id, _ = _create(sandbox_api, event_id, template_id, "bounce@example.com")
    message = _resend(sandbox_api, attendee_id, template_id).json()["message"]
    assert message == "Previous send bounced — resending will not help."


def test_rule_applies_per_attendee_and_template_pair(api, sandbox_api, event_id, template_id):
    attendee_id, _ = _create(sandbox_api, event_id, template_id, "bounce@example.com")
    other = api.post("/comms/v1/api/comms/template", {
        "name": "Reminder", "subject": "Reminder", "textBody": "See you"}).json()["id"]
    assert _resend(sandbox_api, attendee_id, other).status_code == 200


def test_unknown_or_foreign_attendee_is_404(sandbox_api, other_api, event_id, template_id):
    attendee_id, _ = _create(sandbox_api, event_id, template_id, "jane@example.com")
    foreign_template = other_api.post("/comms/v1/api/comms/template", {
        "name": "x", "subject": "s", "textBody": "t"}).json()["id"]
    assert _resend(sandbox_api, str(uuid.uuid4()), template_id).status_code == 404
    assert _resend(sandbox_api, attendee_id, foreign_template).status_code == 404
    response = _resend(other_api, attendee_id, foreign_template)
    assert response.status_code == 404
    assert response.json()["error"] == "attendee_not_found"


def test_send_validates_fields(sandbox_api):
    response = sandbox_api.post("/comms/v1/api/comms/send", {"attendeeId": "nope"})
    assert response.status_code == 400
    assert set(response.json()["fields"]) == {"attendeeId", "templateId"}


def test_invitation_timeline_is_readable(sandbox_api, event_id, template_id):
    _, invitation = _create(sandbox_api, event_id, template_id, "jane@example.com")
    data = sandbox_api.get(f"/comms/v1/api/comms/send/{invitation}").json()
    assert data["status"] == "opened"
    assert [e["name"] for e in data["events"]] == ["comms.sent", "comms.delivered",
                                                   "comms.opened"]
    assert data["deliveredAt"] is not None


# --- the rule is about the address that failed (issue 15, item 5) -------------------------

def _correct_email_in_admin(keys, attendee_id, email):
    """Support corrects the guest's email on the admin's change form."""
    from django.test import Client
    from django.urls import reverse

    from accounts.services import membership_add
    from guests.models import Attendee

    attendee = Attendee.objects.get(id=attendee_id)
    owner = membership_add(account=keys.account, username="olive", role="owner").user
    client = Client()
    client.force_login(owner)
    url = reverse("admin:guests_attendee_change", args=[attendee_id])
    response = client.post(url, {
        "id": str(attendee_id), "account": str(attendee.account_id),
        "event": str(attendee.event_id), "first_name": attendee.first_name,
        "last_name": attendee.last_name, "email": email,
        "correlation_id": attendee.correlation_id or ""})
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert Attendee.objects.get(id=attendee_id).email == email


def test_a_corrected_email_is_sent_again(sandbox_api, keys, event_id, template_id, settings):
    settings.HERALD_SANDBOX_DELAY_SECONDS = 0
    attendee_id, _ = _create(sandbox_api, event_id, template_id, "bounce@example.com")
    assert _resend(sandbox_api, attendee_id, template_id).status_code == 422
    _correct_email_in_admin(keys, attendee_id, "jane@example.com")
    response = _resend(sandbox_api, attendee_id, template_id)
    assert response.status_code == 200, response.content
    resent = Delivery.objects.get(id=response.json()["attendeeInvitationId"])
    assert (resent.recipient, resent.status) == ("jane@example.com", "opened")
    # The old address stays suppressed: the address is blocked, not the person.
    other = _create(sandbox_api, event_id, template_id, "BOUNCE@example.com")[1]
    assert Delivery.objects.get(id=other).status == "suppressed"


def test_the_rule_ignores_letter_case_of_the_same_address(sandbox_api, keys, event_id,
                                                          template_id):
    attendee_id, _ = _create(sandbox_api, event_id, template_id, "bounce@example.com")
    _correct_email_in_admin(keys, attendee_id, "Bounce@Example.com")
    assert _resend(sandbox_api, attendee_id, template_id).status_code == 422


def test_bulk_send_sends_to_a_corrected_email_and_skips_an_uncorrected_one(
        sandbox_api, keys, event_id, template_id, django_capture_on_commit_callbacks):
    from guests.models import BulkSend

    fixed, _ = _create(sandbox_api, event_id, template_id, "bounce-1@example.com")
    _create(sandbox_api, event_id, template_id, "bounce-2@example.com")
    _correct_email_in_admin(keys, fixed, "fixed@example.com")
    job = bulk_send_done(event_id, template_id, audience=BulkSend.Audience.LAST_FAILED,
                         mode="test", capture=django_capture_on_commit_callbacks)
    assert (job.total, job.queued, job.skipped_failed) == (2, 1, 1)
    assert Delivery.objects.filter(owner_id=fixed, recipient="fixed@example.com").exists()
