"""The embedded default: accepts every message and sends nothing.

The delivery row keeps the rendered content, so the admin's Outbox lists what would have
been sent without this adapter storing anything itself; its attachments and extra headers
are made again from the delivery there (``comms.tickets``, ``comms.unsubscribe``: the same
functions, from the same frozen context). Herald's attachment limit applies as it does for
every provider, so a message the outbox accepts is one a real provider would be sent.
"""

from comms.providers.base import Adapter, EmailMessage, SendResult


class OutboxProvider(Adapter):
    name = "outbox"

    def send(self, message: EmailMessage) -> SendResult:
        self.attachments_check(message)
        return SendResult(provider_message_id=f"outbox-{message.delivery_id}")
