"""Outgoing customer webhooks (issue 4 fills this in)."""


def webhooks_emit(*, delivery_event_ids: list[int]) -> None:
    """Turn recorded lifecycle events into webhook messages for the accounts' endpoints."""
