"""The sandbox of ``test_`` keys on every channel: nothing leaves Herald, and the lifecycle is
simulated.

The recipient picks the outcome, so integrators can test every branch. Email, by the local
part: ``bounce…`` bounces, ``drop…`` is dropped, ``spam…`` is delivered then reported as spam,
``unsub…`` is delivered then unsubscribes, ``transient…`` fails transiently on every attempt,
anything else is delivered then opened. Other channels, by the address: one containing
``transient`` fails transiently, ``invalid`` is a dead address (an unregistered push token),
``fail`` is refused; anything else is accepted (and reported delivered shortly after).
"""

from dataclasses import dataclass

from django.conf import settings

from comms.providers.base import (
    Accepted,
    Adapter,
    ChannelMessage,
    EmailMessage,
    FollowUp,
    ProviderInvalidRecipient,
    ProviderPermanentError,
    ProviderTransientError,
    SendResult,
)


@dataclass(frozen=True)
class SimulatedEvent:
    after_seconds: float  # counted from the send, in units of the sandbox delay
    event: str  # normalized vocabulary: delivered, opened, bounced, dropped, ...
    reason: str = ""
    bounce_type: str = ""


_SCRIPTS: list[tuple[str, list[SimulatedEvent]]] = [
    ("bounce", [SimulatedEvent(1, "bounced", "550 5.1.1 No such user", "hard")]),
    ("drop", [SimulatedEvent(1, "dropped", "Bounced Address")]),
    ("spam", [SimulatedEvent(1, "delivered"), SimulatedEvent(2, "spam_reported",
                                                             "Recipient reported spam")]),
    ("unsub", [SimulatedEvent(1, "delivered"), SimulatedEvent(2, "unsubscribed",
                                                              "Recipient unsubscribed")]),
]
_HAPPY = [SimulatedEvent(1, "delivered"), SimulatedEvent(2, "opened")]
_DELIVERED = [SimulatedEvent(1, "delivered")]


class SandboxProvider(Adapter):
    name = "sandbox"
    config_fields: dict[str, str] = {}
    credential_fields: dict[str, str] = {}

    def __init__(self, channel: str = "email") -> None:
        self.channel = channel

    def send(self, message: EmailMessage | ChannelMessage) -> SendResult:
        if isinstance(message, EmailMessage):
            if _local_part(message.to_email).startswith("transient"):
                raise ProviderTransientError("Sandbox: simulated transient failure (503)")
            self.attachments_check(message)  # as a live send would be refused
            return SendResult(provider_message_id=f"sandbox-{message.delivery_id}")
        address = message.to.lower()
        if "transient" in address:
            raise ProviderTransientError("Sandbox: simulated provider outage (503)")
        if "invalid" in address:
            raise ProviderInvalidRecipient("Sandbox: simulated dead address")
        if "fail" in address:
            raise ProviderPermanentError("Sandbox: simulated rejection")
        return SendResult(provider_message_id=f"sandbox-{message.delivery_id}")

    def after_sent(self, accepted: list[Accepted]) -> list[FollowUp]:
        """The simulated lifecycle of each accepted message, later."""
        unit = settings.HERALD_SANDBOX_DELAY_SECONDS
        return [FollowUp(a.delivery_id, step.event, f"sandbox-{a.delivery_id}-{index}",
                         step.after_seconds * unit, step.reason, step.bounce_type)
                for a in accepted
                for index, step in enumerate(
                    self.script(a.to) if a.channel == "email" else _DELIVERED)]

    @staticmethod
    def script(to_email: str) -> list[SimulatedEvent]:
        """The lifecycle events the sandbox will report for this email recipient."""
        local = _local_part(to_email)
        for prefix, events in _SCRIPTS:
            if local.startswith(prefix):
                return events
        return _HAPPY


def _local_part(email: str) -> str:
    return email.rsplit("@", 1)[0].lower()
