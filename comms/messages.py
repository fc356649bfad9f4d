"""What a front end hands the engine: a ``Message``, exactly what the front end knows.

Check-in, spec 002's multi-channel send, spec 003's emails, spec 004's notifications and the
admin build messages and give them to ``comms.services`` (``messages_queue``,
``message_queue``, ``message_row``, ``messages_send_now``); only the engine turns them into
its ``Delivery`` rows.
"""

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import models

# What a message belongs to in its front end: a model instance, or (content type id, id).
Owner = models.Model | tuple[int, Any] | None


@dataclass(frozen=True, slots=True)
class Message:
    """One message to one recipient on one channel.

    ``template_id`` or the given content (``subject`` / ``html`` / ``text``: sent as is);
    ``context``: the template's tokens; ``to_name``, ``sender`` (``{"email", "name"}``) and
    ``options`` (spec 004's per-channel overrides) travel with the context as ``_to_name``,
    ``_sender``, ``_options``; ``owner``: what it belongs to (the front end finds its messages
    by it); ``refs``: the front end's ids its webhooks carry; ``id``: given when the front end
    needs it before the row exists (spec 003's MessageId in its context and Email row);
    ``send_at``: a time to send it at (``scheduled`` until then; None or a past time: now).
    ``headers``/``attachments`` are not given here: the pipeline makes them from the template
    (its topic's unsubscribe headers, a ticket's QR code and invite)."""

    account_id: Any
    mode: str
    recipient: str
    channel: str = "email"
    template_id: Any = None
    subject: str = ""
    html: str = ""
    text: str = ""
    context: Mapping[str, Any] | None = None
    to_name: str = ""
    sender: Mapping[str, Any] | None = None
    options: Mapping[str, Any] | None = None
    correlation_id: str | None = None
    owner: Owner = None
    refs: Mapping[str, Any] | None = None
    event_name: str = ""
    integration_id: Any = None
    id: uuid.UUID | None = field(default=None)
    send_at: datetime | None = None

    def stored_context(self) -> dict[str, Any] | None:
        """The render context as the engine stores it: the tokens and the ``_`` keys."""
        if (self.context is None and not self.to_name and self.sender is None
                and not self.options):
            return None
        stored = dict(self.context or {})
        if self.to_name:
            stored["_to_name"] = self.to_name
        if self.sender is not None:
            stored["_sender"] = dict(self.sender)
        if self.options:
            stored["_options"] = dict(self.options)
        return stored
