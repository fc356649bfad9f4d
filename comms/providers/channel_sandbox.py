"""The sandbox of ``test_`` keys on every channel other than email: nothing leaves Herald.

The address picks the outcome, so integrators can test every branch: one containing
``transient`` fails transiently, ``invalid`` is a dead address (an unregistered push token),
``fail`` is refused; anything else is accepted (and reported delivered shortly after).
"""

from comms.providers.base import (
    ChannelMessage,
    ProviderInvalidRecipient,
    ProviderPermanentError,
    ProviderTransientError,
    SendResult,
)


class SandboxChannelProvider:
    name = "sandbox"
    config_fields: dict[str, str] = {}
    credential_fields: dict[str, str] = {}

    def __init__(self, channel: str) -> None:
        self.channel = channel

    def send(self, message: ChannelMessage) -> SendResult:
        address = message.to.lower()
        if "transient" in address:
            raise ProviderTransientError("Sandbox: simulated provider outage (503)")
        if "invalid" in address:
            raise ProviderInvalidRecipient("Sandbox: simulated dead address")
        if "fail" in address:
            raise ProviderPermanentError("Sandbox: simulated rejection")
        return SendResult(provider_message_id=f"sandbox-{message.delivery_id}")
