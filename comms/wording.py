"""Plain words for staff and support: delivery statuses, timeline events, failure causes and
send refusals, as a guest could be told them.

The engine's vocabulary (``comms.models.Status``, the timeline's ``comms.*`` event names, the
providers' bounce reasons: SMTP codes such as ``550 5.1.1``, SES bounce subtypes, SendGrid
bounce classifications and drop reasons) turned into sentences. Every page that shows a
delivery uses these words; nothing here knows a front end (guests, contacts) or the admin.
Dates are in the current time zone (the site's, ``settings.TIME_ZONE``).
"""

import re
from datetime import datetime, tzinfo
from typing import Any

from django.utils import dateformat, timezone

from comms.models import Status

STATUS_WORDS: dict[str, str] = {
    Status.SCHEDULED: "Scheduled",
    Status.QUEUED: "Queued",
    Status.SENDING: "Being sent",
    Status.SENT: "Sent to the {provider}",
    Status.DELIVERED: "Delivered",
    Status.OPENED: "Opened",
    Status.CLICKED: "Opened, a link clicked",
    Status.FAILED: "Failed",
    Status.BOUNCED: "Bounced",
    Status.DROPPED: "Not delivered: the {provider} refused it",
    Status.SPAM_REPORTED: "Reported as spam",
    Status.UNSUBSCRIBED: "Unsubscribed",
    Status.SUPPRESSED: "Not sent: the address is on the suppression list",
    Status.CANCELLED: "Cancelled before it was sent",
}


# How pages name a key mode: a test key's send is a sandbox rehearsal, never live traffic.
MODE_WORDS = {"live": "live", "test": "sandbox rehearsal"}


def mode_words(mode: str) -> str:
    return MODE_WORDS.get(mode, mode)


def provider_noun(channel: str = "email") -> str:
    """What staff call the service a message went through."""
    return "mail provider" if channel == "email" else "sending service"


def status_words(status: str | None, *, channel: str = "email") -> str:
    """A delivery's status as a short phrase ("Sent to the mail provider", "Bounced")."""
    if not status:
        return "Never sent"
    text = STATUS_WORDS.get(status, status.replace("_", " ").capitalize())
    return text.format(provider=provider_noun(channel))


def status_words_with_cause(*, status: str, channel: str = "email", reason: str = "",
                            bounce_type: str = "", bounce_subtype: str = "",
                            failure_type: str = "") -> str:
    """The status with its cause when it failed ("Bounced: the mailbox does not exist");
    ``failure_type``: the delivery's, which tells a failure of the send itself (not sent) from
    a receiving server's refusal."""
    words = status_words(status, channel=channel)
    if status == Status.CANCELLED:
        return cancelled_words(reason)
    if status not in (Status.BOUNCED, Status.DROPPED, Status.FAILED):
        return words
    cause = failure_cause(reason=reason, bounce_type=bounce_type,
                          bounce_subtype=bounce_subtype)
    if status == Status.FAILED:
        return _failed_status_words(failure_type or bounce_type, provider_noun(channel), cause)
    if not cause:
        return words
    return f"{words}: {cause}" if status == Status.BOUNCED else f"{words} ({cause})"


# A cancel's reason as ``comms.scheduling.delivery_cancel`` records a request's (the APIs').
API_CANCEL = "Cancelled by request."


def cancelled_words(reason: str = "") -> str:
    """A cancelled delivery in words, with who or what cancelled it when its reason says
    ("Cancelled by Ann Lee", "Cancelled: the guest was removed"). The reason is the one
    ``comms.scheduling.deliveries_cancel`` recorded: a sentence, its caller's words."""
    reason = (reason or "").strip().rstrip(".")
    if not reason:
        return STATUS_WORDS[Status.CANCELLED]
    if reason == API_CANCEL.rstrip("."):
        return "Cancelled through the API before it was sent"
    if reason.lower().startswith("cancelled"):
        return reason
    return f"Cancelled: {reason[0].lower()}{reason[1:]}"


def who(user: Any) -> str:
    """A member of staff as a cancel's or a change's reason names them: their name, else
    their login ("Cancelled by Ann Lee")."""
    if user is None:
        return "Herald"
    return (user.get_full_name() or user.get_username()).strip() or "a member of staff"


def scheduled_words(when: datetime | None, zone: tzinfo | None = None) -> str:
    """"Scheduled for Sat 17 Apr, 19:00 (Europe/Paris)": the time in ``zone`` (an event's,
    named), else in the current time zone (the site's, unnamed)."""
    if when is None:
        return STATUS_WORDS[Status.SCHEDULED]
    local = timezone.localtime(when, zone)
    fmt = "D j M, H:i" if local.year == timezone.localtime(timezone=zone).year else "D j M Y, H:i"
    named = f" ({zone})" if zone is not None else ""
    return f"Scheduled for {dateformat.format(local, fmt)}{named}"


# --- causes -----------------------------------------------------------------------------------

MAILBOX_MISSING = "the mailbox does not exist"
# SES bounce subtypes (its Bounce notification's ``bounceSubType``).
SES_SUBTYPES: dict[str, str] = {
    "NoEmail": MAILBOX_MISSING,
    "MailboxFull": "the mailbox is full",
    "MessageTooLarge": "the message is too large for the mailbox",
    "ContentRejected": "the receiving server refused the message's content",
    "AttachmentRejected": "the receiving server refused an attachment",
    "Suppressed": "the mail provider's own suppression list holds this address",
    "OnAccountSuppressionList": "the mail provider's own suppression list holds this address",
}
# Vague subtypes: used only when the server's own answer says nothing more precise.
SES_VAGUE_SUBTYPES: dict[str, str] = {"General": "the receiving server refused the address"}
# SendGrid's ``bounce_classification``.
SENDGRID_CLASSES: dict[str, str] = {
    "invalid address": "the address does not exist",
    "mailbox unavailable": "the mailbox is unavailable",
    "technical": "a technical problem at the receiving server",
    "content": "the receiving server refused the message's content",
    "reputation": "the receiving server blocked mail from our sender",
    "frequency or volume too high": "the receiving server got too many messages at once",
}
# Enhanced SMTP status codes (RFC 3463): class.subject.detail, without the class.
SMTP_DETAILS: dict[str, str] = {
    "1.1": MAILBOX_MISSING,
    "1.0": "the address is not valid",
    "1.2": "the email domain does not exist",
    "1.3": "the address is not valid",
    "1.6": "the mailbox has moved",
    "1.10": "the email domain does not take email",
    "2.1": "the mailbox is disabled",
    "2.2": "the mailbox is full",
    "2.3": "the message is too large for the mailbox",
    "3.4": "the message is too large",
    "4.1": "the receiving server refused the address",
    "4.4": "the email domain could not be reached",
    "4.7": "the message expired before it could be delivered",
    "7.1": "the receiving server's policy or spam filter refused it",
}
# What vendors and servers write in words, when no code says it (first match wins).
PHRASES: tuple[tuple[str, str], ...] = (
    ("bounced address", "the address bounced before"),
    ("unsubscribed address", "the address unsubscribed before"),
    ("spam reporting address", "the address reported spam before"),
    ("no such user", MAILBOX_MISSING),
    ("user unknown", MAILBOX_MISSING),
    ("unknown user", MAILBOX_MISSING),
    ("does not exist", MAILBOX_MISSING),
    ("mailbox not found", MAILBOX_MISSING),
    ("mailbox unavailable", "the mailbox is unavailable"),
    ("mailbox full", "the mailbox is full"),
    ("over quota", "the mailbox is full"),
    ("quota exceeded", "the mailbox is full"),
    ("invalid", "the address is not valid"),
    ("spam", "the receiving server took it for spam"),
)
_ENHANCED = re.compile(r"\b[245]\.(\d{1,3})\.(\d{1,3})\b")
_BASIC = re.compile(r"\b(5[05][0-4])\b")
BASIC_CODES: dict[str, str] = {
    "550": "the receiving server refused the address",
    "551": "the address is not valid",
    "552": "the mailbox is full",
    "553": "the address is not valid",
    "554": "the receiving server refused the message",
}


def failure_cause(*, reason: str = "", bounce_type: str = "", bounce_subtype: str = "") -> str:
    """Why a message failed, in words ("the mailbox does not exist"), from what the provider
    reported; "" when nothing it said is understood."""
    if bounce_subtype in SES_SUBTYPES:
        return SES_SUBTYPES[bounce_subtype]
    text = (reason or "").lower()
    if match := _ENHANCED.search(text):
        subject, detail = match.groups()
        found = SMTP_DETAILS.get(f"{subject}.{detail}")
        if found:
            return found
        if subject == "7":
            return "the receiving server refused it for security or policy reasons"
    if bounce_subtype.lower() in SENDGRID_CLASSES:
        return SENDGRID_CLASSES[bounce_subtype.lower()]
    for phrase, words in PHRASES:
        if phrase in text:
            return words
    if (match := _BASIC.search(text)) and match.group(1) in BASIC_CODES:
        return BASIC_CODES[match.group(1)]
    return SES_VAGUE_SUBTYPES.get(bounce_subtype, "")


# --- dates ------------------------------------------------------------------------------------

def day(value: datetime | None) -> str:
    """"3 Dec" (this year) or "3 Dec 2025", in the current time zone."""
    if value is None:
        return "an earlier date"
    local = timezone.localtime(value)
    fmt = "j M" if local.year == timezone.localtime().year else "j M Y"
    return dateformat.format(local, fmt)


def moment(value: datetime | None) -> str:
    """"3 Dec, 14:02" (this year) or "3 Dec 2025, 14:02", in the current time zone."""
    if value is None:
        return ""
    return f"{day(value)}, {dateformat.format(timezone.localtime(value), 'H:i')}"


# --- suppressions and refusals ----------------------------------------------------------------

def suppression_words(*, reason: str, since: datetime | None) -> str:
    """Why an address is on the suppression list, with the date: "this address is on the
    suppression list because it bounced on 3 Dec"."""
    when = day(since)
    return {
        Status.UNSUBSCRIBED: f"this address unsubscribed on {when}",
        Status.SPAM_REPORTED: f"this address reported our email as spam on {when}",
        Status.DROPPED: ("this address is on the suppression list because the mail provider "
                         f"refused it on {when}"),
    }.get(reason, f"this address is on the suppression list because it bounced on {when}")


def refusal_words(*, failure_type: str, failed_at: datetime | None, reason: str = "",
                  bounce_type: str = "", bounce_subtype: str = "") -> str:
    """A refused send (spec 000's 422 rule: the last send to this address failed for good), in
    words a guest could be told: "We can't send to this address: it bounced on 3 Dec (the
    mailbox does not exist). Fix the address and resend." """
    cause = failure_cause(reason=reason, bounce_type=bounce_type, bounce_subtype=bounce_subtype)
    because = f" ({cause})" if cause else ""
    when = day(failed_at)
    if failure_type == Status.UNSUBSCRIBED:
        return (f"We won't send to this address: its owner unsubscribed on {when}. Ask for "
                "another address, or for them to subscribe again.")
    if failure_type == Status.SPAM_REPORTED:
        return (f"We won't send to this address: its owner reported our email as spam on "
                f"{when}. Ask for another address.")
    what = (f"the mail provider refused it on {when}" if failure_type == Status.DROPPED
            else f"it bounced on {when}")
    return f"We can't send to this address: {what}{because}. Fix the address and resend."


# --- timeline ---------------------------------------------------------------------------------

def event_words(*, name: str, status: str = "", detail: dict[str, Any] | None = None,
                channel: str = "email", suppressed_since: datetime | None = None) -> str:
    """One timeline event (``DeliveryEvent``: its name, status and detail) as a sentence:
    "Sent to the mail provider", "Bounced: the mailbox does not exist", "Not sent: this
    address unsubscribed on 3 Dec". ``suppressed_since``: when the suppression that stopped
    the send began, if known."""
    detail = detail or {}
    provider = provider_noun(channel)
    cause = failure_cause(reason=str(detail.get("reason") or ""),
                          bounce_type=str(detail.get("bounce_type") or ""),
                          bounce_subtype=str(detail.get("bounce_subtype") or ""))
    kind = name.removeprefix("comms.")
    if kind == "cancelled":
        return cancelled_words(str(detail.get("reason") or ""))
    if kind == "bounced":
        if status == Status.FAILED:  # a soft ("blocked") bounce: the address is fine
            return ("Refused for now by the receiving server"
                    + (f" ({cause})" if cause else "") + "; a resend may work")
        return f"Bounced: {cause or 'the receiving server refused the address'}"
    if kind == "failed":
        return _failed_words(status, detail, provider, cause, suppressed_since)
    if kind == "deferred":
        return f"Delayed by the receiving server{f' ({cause})' if cause else ''}; still trying"
    if kind == "dropped":
        return f"Not delivered: the {provider} refused it{f' ({cause})' if cause else ''}"
    if kind == "retry_scheduled":
        seconds = detail.get("retryInSeconds")
        later = f" in {_seconds(seconds)}" if isinstance(seconds, int | float) else " later"
        return f"The {provider} did not answer; trying again{later}"
    simple = {
        "queued": "Queued",
        "sent": f"Sent to the {provider}",
        "processed": f"Accepted by the {provider}",
        "delivered": "Delivered",
        "opened": "Opened",
        "clicked": "A link was clicked",
        "spam_reported": "Reported as spam by the recipient",
        "unsubscribed": "The recipient unsubscribed",
        "resubscribed": "The recipient subscribed again",
        "failover": f"The {provider} failed; trying the next one",
    }
    return simple.get(kind, kind.replace("_", " ").capitalize())


def _failed_words(status: str, detail: dict[str, Any], provider: str, cause: str,
                  suppressed_since: datetime | None) -> str:
    failure_type = str(detail.get("failureType") or "")
    if status == Status.SUPPRESSED:
        return "Not sent: " + suppression_words(reason=failure_type, since=suppressed_since)
    return "Not sent: " + _not_sent(failure_type, provider, cause)


def _not_sent(failure_type: str, provider: str, cause: str) -> str:
    """Why the send itself failed (``comms.pipeline``'s failure types)."""
    return {
        "transient": f"the {provider} could not be reached after several tries",
        "template_error": "the template could not be filled in",
        "attachments_too_large": "its attachments are too large to send",
        "invalid_recipient": "the address is not valid",
        "configuration": f"Herald's {provider} is not set up",
        "integration_missing": f"no {provider} is set up for this channel",
    }.get(failure_type, f"the {provider} refused it" + (f" ({cause})" if cause else ""))


# The failure types of a send that reached the receiving server, which refused it for now
# (a "blocked" bounce: ``comms.lifecycle.SOFT_BOUNCE_TYPES``): a resend may work.
REFUSED_FOR_NOW = frozenset({"blocked"})


def _failed_status_words(failure_type: str, provider: str, cause: str) -> str:
    if failure_type in REFUSED_FOR_NOW:
        return ("Refused for now by the receiving server" + (f" ({cause})" if cause else ""))
    if failure_type:
        return "Not sent: " + _not_sent(failure_type, provider, cause)
    return "Failed" + (f" ({cause})" if cause else "")


def _seconds(value: float) -> str:
    value = max(0, round(value))
    if value < 90:
        return f"{value} s"
    return f"{round(value / 60)} min"
