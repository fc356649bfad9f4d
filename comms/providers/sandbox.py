"""The sandbox provider of ``test_`` keys: sends nothing, simulates the whole lifecycle.

The recipient's local part picks the outcome, so integrators can test every branch:
``bounce…`` bounces, ``drop…`` is dropped, ``spam…`` is delivered then reported as spam,
``unsub…`` is delivered then unsubscribes, ``transient…`` fails transiently on every
attempt, anything else is delivered then opened.
"""

from dataclasses import dataclass

from comms.providers.base import EmailMessage, ProviderTransientError, SendResult


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


class SandboxProvider:
    name = "sandbox"

    def send(self, message: EmailMessage) -> SendResult:
        if _local_part(message.to_email).startswith("transient"):
            raise ProviderTransientError("Sandbox: simulated transient failure (503)")
        return SendResult(provider_message_id=f"sandbox-{message.delivery_id}")

    @staticmethod
    def script(to_email: str) -> list[SimulatedEvent]:
        """The lifecycle events the sandbox will report for this recipient."""
        local = _local_part(to_email)
        for prefix, events in _SCRIPTS:
            if local.startswith(prefix):
                return events
        return _HAPPY


def _local_part(email: str) -> str:
    return email.rsplit("@", 1)[0].lower()
