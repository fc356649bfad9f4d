"""Celery tasks of the send pipeline: they take ids, call one service, and have stable names."""

from celery import shared_task

from comms import services


@shared_task(name="comms.send_delivery", ignore_result=True)
def send_delivery(delivery_id: str) -> None:
    services.delivery_dispatch(delivery_id=delivery_id)


@shared_task(name="comms.apply_sandbox_event", ignore_result=True)
def apply_sandbox_event(*, delivery_id: str, event: str, provider_event_id: str,
                        reason: str = "") -> None:
    services.delivery_apply_event(
        delivery_id=delivery_id, event=event, provider_event_id=provider_event_id, reason=reason,
    )


@shared_task(name="comms.deliveries_sweep", ignore_result=True)
def deliveries_sweep() -> int:
    return services.deliveries_sweep()
