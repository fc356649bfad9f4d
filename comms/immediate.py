"""Messages sent while their front end waits (spec 002's synchronous send): the engine's
other entry besides ``comms.services``' queue. Apart from it because it runs the pipeline,
whose outcomes reach back to ``comms.services`` (suppressions)."""

from collections.abc import Mapping, Sequence

from django.db import transaction
from django.utils import timezone

from comms import outcomes
from comms.messages import Message
from comms.models import Delivery, Status
from comms.pipeline import deliveries_send
from comms.services import deliveries_logged, message_row


def messages_send_now(messages: Sequence[Message], *,
                      refused: Mapping[int, tuple[str, str]] | None = None) -> list[Delivery]:
    """Spec 002's synchronous send: the rows are committed as claimed (``sending``) before
    any provider is called, so a crash loses nothing (the sweeper re-queues them after the
    lease); then each is tried once through its chain and its outcome is final. ``refused``:
    index → (code, reason) of messages failed at once, never sent."""
    now, refused = timezone.now(), refused or {}
    rows = [message_row(m) for m in messages]
    for row in rows:
        row.status, row.claimed_at, row.attempts = Status.SENDING, now, 1
    with transaction.atomic():
        Delivery.objects.bulk_create(rows)
        deliveries_logged(rows)
    for index, (code, reason) in refused.items():
        outcomes.fail(rows[index], rows[index].channel, Status.FAILED, code, reason)
    deliveries_send([r for i, r in enumerate(rows) if i not in refused], final=True)
    return rows
