"""Set-up helpers of the comms tests (what a provider's bounce would leave behind)."""

from typing import Any

from comms.services import suppressions_add


def suppression_add(*, account_id: Any, address: str, reason: str, detail: str = "",
                    delivery_id: Any = None, channel: str = "email",
                    mode: str | None = None) -> None:
    """One suppression, through the service the lifecycle suppresses with."""
    suppressions_add(items=[{"account_id": account_id, "address": address, "reason": reason,
                             "detail": detail, "delivery_id": delivery_id,
                             "channel": channel, "mode": mode}])
