"""Plain words for what happened to a message: the vendors' own callbacks (SendGrid's event
webhook, SES through SNS) parsed by Herald's parsers, then worded for staff and guests."""

import json
from datetime import UTC, datetime

import pytest
from django.utils import timezone

from comms import wording
from comms.callbacks.sendgrid import parse_batch
from comms.callbacks.ses import parse_message
from comms.lifecycle import EVENT_EFFECT, _detail

DEC_3 = datetime(2026, 12, 3, 9, 30, tzinfo=UTC)


def sendgrid(kind: str, **fields) -> dict:
    """One SendGrid event webhook item, as SendGrid posts it."""
    return {"email": "jane@example.com", "timestamp": 1764754200, "event": kind,
            "sg_event_id": f"sg-{kind}", "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001",
            "smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>", "herald_delivery_id": "d-1",
            **fields}


def ses_bounce(subtype: str, diagnostic: str | None) -> str:
    """An SNS notification carrying SES's Bounce event."""
    recipient = {"emailAddress": "jane@example.com", "action": "failed"}
    if diagnostic:  # SES gives the status and the server's answer when there was one
        recipient.update(status=diagnostic.split()[2], diagnosticCode=diagnostic)
    event = {"eventType": "Bounce", "mail": {
        "timestamp": "2026-12-03T09:29:50.000Z", "messageId": "ses-1",
        "destination": ["jane@example.com"], "tags": {"herald_delivery_id": ["d-1"]}},
        "bounce": {"bounceType": "Permanent", "bounceSubType": subtype,
                   "timestamp": "2026-12-03T09:30:00.000Z", "bouncedRecipients": [recipient]}}
    return json.dumps({"Type": "Notification", "MessageId": "sns-1",
                       "TopicArn": "arn:aws:sns:us-east-1:123456789012:herald",
                       "Message": json.dumps(event), "Timestamp": "2026-12-03T09:30:01.000Z"})


def timeline_line(event) -> str:
    """A parsed provider event as the timeline stores it (name, status, detail), worded."""
    name, status = EVENT_EFFECT[event.event]
    return wording.event_words(name=name, status=status or "", detail=_detail(event))


@pytest.mark.parametrize("item,expected", [
    (sendgrid("bounce", type="bounce", reason="550 5.1.1 No such user", status="5.1.1",
              bounce_classification="Invalid Address"),
     "Bounced: the mailbox does not exist"),
    (sendgrid("bounce", type="bounce", reason="552 5.2.2 Mailbox full", status="5.2.2",
              bounce_classification="Mailbox Unavailable"),
     "Bounced: the mailbox is full"),
    (sendgrid("bounce", type="bounce", reason="smtp error", bounce_classification="Reputation"),
     "Bounced: the receiving server blocked mail from our sender"),
    (sendgrid("dropped", reason="Bounced Address"),
     "Not delivered: the mail provider refused it (the address bounced before)"),
    (sendgrid("dropped", reason="Unsubscribed Address"),
     "Not delivered: the mail provider refused it (the address unsubscribed before)"),
    (sendgrid("spamreport"), "Reported as spam by the recipient"),
    (sendgrid("delivered", response="250 OK"), "Delivered"),
    (sendgrid("open", useragent="Mozilla"), "Opened"),
    (sendgrid("processed"), "Accepted by the mail provider"),
    (sendgrid("deferred", response="451 4.7.1 Try again later", attempt="1"),
     "Delayed by the receiving server (the receiving server's policy or spam filter refused "
     "it); still trying"),
])
def test_sendgrid_events_in_words(item, expected):
    [event] = parse_batch(json.dumps([item]))
    assert timeline_line(event) == expected


def test_a_blocked_sendgrid_bounce_is_no_bounce_of_the_address():
    [event] = parse_batch(json.dumps([sendgrid("bounce", type="blocked",
                                               reason="554 5.7.1 blocked by policy")]))
    line = wording.event_words(name="comms.bounced", status="failed", detail=_detail(event))
    assert line == ("Refused for now by the receiving server (the receiving server's policy or "
                    "spam filter refused it); a resend may work")


@pytest.mark.parametrize("subtype,diagnostic,expected", [
    ("General", "smtp; 550 5.1.1 user unknown", "Bounced: the mailbox does not exist"),
    ("NoEmail", None, "Bounced: the mailbox does not exist"),
    ("MailboxFull", "smtp; 552 5.2.2 quota exceeded", "Bounced: the mailbox is full"),
    ("Suppressed", None,
     "Bounced: the mail provider's own suppression list holds this address"),
    ("General", None, "Bounced: the receiving server refused the address"),
])
def test_ses_bounces_in_words(subtype, diagnostic, expected):
    [event] = parse_message(ses_bounce(subtype, diagnostic))
    assert timeline_line(event) == expected


@pytest.mark.parametrize("status,text", [
    ("queued", "Queued"), ("sent", "Sent to the mail provider"), ("delivered", "Delivered"),
    ("opened", "Opened"), ("bounced", "Bounced"), ("spam_reported", "Reported as spam"),
    ("suppressed", "Not sent: the address is on the suppression list"), (None, "Never sent"),
    ("scheduled", "Scheduled"), ("cancelled", "Cancelled before it was sent"),
])
def test_statuses_in_words(status, text):
    assert wording.status_words(status) == text


@pytest.mark.parametrize("fields,text", [
    ({"failure_type": "transient"},
     "Not sent: the mail provider could not be reached after several tries"),
    ({"failure_type": "template_error"}, "Not sent: the template could not be filled in"),
    ({"failure_type": "blocked", "bounce_type": "blocked", "reason": "554 5.7.1 blocked"},
     "Refused for now by the receiving server (the receiving server's policy or spam filter "
     "refused it)"),
    ({"bounce_type": "blocked"}, "Refused for now by the receiving server"),
    ({}, "Failed"),
])
def test_a_failed_delivery_says_whether_it_was_ever_sent(fields, text):
    assert wording.status_words_with_cause(status="failed", **fields) == text


def test_a_status_names_its_cause_and_other_channels_name_no_mail_provider():
    assert wording.status_words_with_cause(
        status="bounced", reason="550 5.1.1 No such user") == "Bounced: the mailbox does not exist"
    assert wording.status_words_with_cause(status="delivered", reason="250 OK") == "Delivered"
    assert wording.status_words("sent", channel="sms") == "Sent to the sending service"


@pytest.mark.parametrize("reason,text", [
    ("bounced", "Not sent: this address is on the suppression list because it bounced on "
                "3 Dec"),
    ("unsubscribed", "Not sent: this address unsubscribed on 3 Dec"),
    ("spam_reported", "Not sent: this address reported our email as spam on 3 Dec"),
])
def test_a_send_stopped_by_the_suppression_list_says_why_and_since_when(reason, text, settings):
    settings.TIME_ZONE = "UTC"
    with timezone.override("UTC"), _this_year(2026):
        # As comms.pipeline records it: a failed event with the suppression's reason.
        assert wording.event_words(
            name="comms.failed", status="suppressed",
            detail={"provider": "sendgrid", "failureType": reason,
                    "reason": "jane@example.com is suppressed (bounced at 2026-12-03T09:30:00Z)"},
            suppressed_since=DEC_3) == text


def test_refusals_in_words_a_guest_could_be_told():
    with timezone.override("UTC"), _this_year(2026):
        assert wording.refusal_words(
            failure_type="bounced", failed_at=DEC_3, reason="550 5.1.1 No such user") == (
            "We can't send to this address: it bounced on 3 Dec (the mailbox does not exist). "
            "Fix the address and resend.")
        assert wording.refusal_words(failure_type="dropped", failed_at=DEC_3,
                                     reason="Bounced Address") == (
            "We can't send to this address: the mail provider refused it on 3 Dec (the address "
            "bounced before). Fix the address and resend.")
        assert "unsubscribed on 3 Dec" in wording.refusal_words(
            failure_type="unsubscribed", failed_at=DEC_3)


def test_dates_are_in_the_sites_time_zone_with_the_year_when_not_this_one():
    with timezone.override("Pacific/Auckland"), _this_year(2026):
        assert wording.moment(DEC_3) == "3 Dec, 22:30"  # UTC+13 in December
    with timezone.override("UTC"), _this_year(2027):
        assert wording.day(DEC_3) == "3 Dec 2026"


def test_failures_of_the_send_itself_in_words():
    assert wording.event_words(name="comms.failed", status="failed", detail={
        "failureType": "transient", "reason": "503 after 5 attempts"}) == (
        "Not sent: the mail provider could not be reached after several tries")
    assert wording.event_words(name="comms.retry_scheduled", status="queued", detail={
        "retryInSeconds": 30.2}) == "The mail provider did not answer; trying again in 30 s"
    assert wording.event_words(name="comms.sent", status="sent", detail={
        "provider": "sandbox", "messageId": "sandbox-1"}) == "Sent to the mail provider"


@pytest.mark.parametrize("reason,text", [
    ("Cancelled by Ann Lee on the guest's page.", "Cancelled by Ann Lee on the guest's page"),
    ("Cancelled by request.", "Cancelled through the API before it was sent"),
    ("The guest was removed.", "Cancelled: the guest was removed"),
    ("", "Cancelled before it was sent"),
])
def test_a_cancelled_delivery_says_who_or_what_cancelled_it(reason, text):
    """As ``comms.scheduling.deliveries_cancel`` records it: the status with its reason, and
    the timeline's ``comms.cancelled`` event with the reason in its detail."""
    assert wording.status_words_with_cause(status="cancelled", reason=reason) == text
    assert wording.event_words(name="comms.cancelled", status="cancelled",
                               detail={"reason": reason}) == text


def test_a_scheduled_time_in_the_events_zone_named_or_the_sites_unnamed():
    from zoneinfo import ZoneInfo

    winter = datetime(2027, 1, 16, 18, 0, tzinfo=UTC)
    with timezone.override("UTC"), _this_year(2027):
        assert wording.scheduled_words(winter, ZoneInfo("Europe/Paris")) == (
            "Scheduled for Sat 16 Jan, 19:00 (Europe/Paris)")
        assert wording.scheduled_words(winter) == "Scheduled for Sat 16 Jan, 18:00"
        assert wording.scheduled_words(None) == "Scheduled"
    with timezone.override("UTC"), _this_year(2026):
        assert wording.scheduled_words(winter, ZoneInfo("America/New_York")) == (
            "Scheduled for Sat 16 Jan 2027, 13:00 (America/New_York)")


class _this_year:
    """``timezone.now`` in a given year, so "this year's" dates drop their year."""

    def __init__(self, year: int) -> None:
        self.year = year

    def __enter__(self) -> None:
        self.patch = pytest.MonkeyPatch()
        now = datetime(self.year, 6, 1, tzinfo=UTC)
        self.patch.setattr(timezone, "now", lambda: now)

    def __exit__(self, *exc) -> None:
        self.patch.undo()
