"""Reads on deliveries and suppressions shared by the send paths."""

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.db.models import QuerySet

from comms.models import Delivery, Suppression
from templates.models import TRANSACTIONAL


def suppressions_active(*, account_ids: Iterable[Any], mode: str, channel: str = "email",
                        addresses: Iterable[str] | None = None,
                        category: str | None = None) -> QuerySet[Suppression]:
    """The suppressions in force (not lifted) for sends of this key mode on a channel:
    a live send honours live suppressions only (a sandbox bounce never blocks it), a test
    send both (to rehearse what live would do). ``addresses`` (compared lower-cased, as
    stored) narrows them. ``category`` (a template's): only those that stop a message of it
    (``suppression_stops``); None: every one, whatever its topic (the lists). The one
    definition every path uses: dispatch, bulk send, the admin's preview, the API's list."""
    rows = Suppression.objects.filter(account_id__in=list(account_ids), channel=channel,
                                      mode__in=suppression_modes(mode),
                                      removed_at__isnull=True)
    if addresses is not None:
        rows = rows.filter(address__in={a.strip().lower() for a in addresses})
    if category is not None:
        rows = rows.filter(topic__in=suppression_topics(category))
    return rows


def suppression_modes(mode: str) -> tuple[str, ...]:
    """The suppressions' modes a send in ``mode`` honours."""
    return ("live",) if mode == "live" else ("live", "test")


def suppression_topics(category: str) -> tuple[str, ...]:
    """The suppressions' topics that stop a message of a template ``category``: every one
    stops on "" (a bounce, a spam report); a topic's also on its own unsubscribes and on
    "every topic"; a transactional message (a ticket) on nothing else."""
    if not category or category == TRANSACTIONAL:
        return ("",)
    return ("", Suppression.ALL_TOPICS, category)


def suppression_stops(suppression: Suppression, category: str) -> bool:
    """Whether ``suppression`` stops a message of a template ``category``."""
    return suppression.topic in suppression_topics(category)


def suppressions_began(*, stops: Iterable[tuple[Any, Delivery, datetime]]
                       ) -> dict[Any, datetime | None]:
    """For each send the suppression list stopped (a key, its delivery, when it was stopped):
    when the suppression that stopped it began: the latest one created by then that stops a
    message of its template's category in its mode (the bounce, or the unsubscribe from its
    topic: another topic's never stops it; lifted ones count, they were in force then); None
    if none is found. One query for all of them (a guest's page shows up to 30 deliveries);
    the deliveries' templates are read (``select_related("template")``)."""
    stops = list(stops)
    if not stops:
        return {}
    rows = list(Suppression.objects.filter(
        account_id__in={d.account_id for _, d, _ in stops},
        channel__in={d.channel for _, d, _ in stops},
        address__in={d.recipient.strip().lower() for _, d, _ in stops},
        created_at__lte=max(at for _, _, at in stops),
    ).values_list("account_id", "channel", "address", "mode", "topic", "created_at"))
    began: dict[Any, datetime | None] = {}
    for key, delivery, at in stops:
        wanted = (delivery.account_id, delivery.channel, delivery.recipient.strip().lower())
        modes = suppression_modes(delivery.mode)
        topics = suppression_topics(delivery.template.category if delivery.template_id else "")
        began[key] = max((created for *who, mode, topic, created in rows
                          if tuple(who) == wanted and mode in modes and topic in topics
                          and created <= at), default=None)
    return began


def unsubscribe_of(*, account_id: Any, mode: str, address: str,
                   category: str) -> Suppression | None:
    """The address's unsubscribe (not a bounce) that stops a message of ``category``, the
    earliest; None for a transactional one (never unsubscribable). Spec 000's two-step send
    answers it with its 422 ``unsubscribed``."""
    return (suppressions_active(account_ids=[account_id], mode=mode, addresses=[address],
                                category=category)
            .exclude(topic="").order_by("created_at").first())
