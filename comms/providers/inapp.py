"""The in-app channel: the delivery row itself is the user's inbox entry. Sending stores
nothing more; the dispatcher records it as delivered at once, and reading it over REST
records ``opened``."""

from comms.providers.base import ChannelMessage, SendResult


class InAppProvider:
    name = "inapp"
    channel = "inapp"
    config_fields: dict[str, str] = {}
    credential_fields: dict[str, str] = {}

    def send(self, message: ChannelMessage) -> SendResult:
        return SendResult(provider_message_id=f"inapp-{message.delivery_id}")
