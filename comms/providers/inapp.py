"""The in-app channel: the delivery row itself is the user's inbox entry. Sending stores
nothing more; the message is delivered once stored (``after_sent``), and reading it over
REST records ``opened``."""

from comms.providers.base import Accepted, Adapter, ChannelMessage, FollowUp, SendResult


class InAppProvider(Adapter):
    name = "inapp"
    channel = "inapp"
    config_fields: dict[str, str] = {}
    credential_fields: dict[str, str] = {}

    def send(self, message: ChannelMessage) -> SendResult:
        return SendResult(provider_message_id=f"inapp-{message.delivery_id}")

    def after_sent(self, accepted: list[Accepted]) -> list[FollowUp]:
        """In the inbox as soon as stored."""
        return [FollowUp(a.delivery_id, "delivered", f"inapp-stored-{a.delivery_id}")
                for a in accepted]
