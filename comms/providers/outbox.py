"""The embedded default: accepts every message and sends nothing.

The delivery row keeps the rendered content, so the admin's Outbox lists what would have
been sent without this adapter storing anything itself.
"""

from comms.providers.base import Adapter, EmailMessage, SendResult


class OutboxProvider(Adapter):
    name = "outbox"

    def send(self, message: EmailMessage) -> SendResult:
        return SendResult(provider_message_id=f"outbox-{message.delivery_id}")
