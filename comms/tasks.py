"""Celery tasks of the send pipeline: they take ids, call one service, and have stable names."""

from celery import shared_task
from django.utils import timezone

from comms import dispatch, scheduling
from comms.callbacks.services import callback_batch_process, callback_batches_sweep
from comms.lifecycle import provider_events_apply
from comms.providers import registry
from comms.providers.base import ProviderEvent


@shared_task(name="comms.send_delivery", ignore_result=True)
def send_delivery(delivery_id: str | None) -> None:
    dispatch.delivery_dispatch(delivery_id=delivery_id)


@shared_task(name="comms.apply_provider_event", ignore_result=True)
def apply_provider_event(*, delivery_id: str, event: str, provider_event_id: str,
                         reason: str = "", bounce_type: str = "", provider: str = "") -> None:
    """An event a provider reports itself some time after a send (``FollowUp``: the
    sandbox's simulated lifecycle); without ``provider``, the test keys' provider's."""
    provider_events_apply([ProviderEvent(
        provider=provider or registry.for_test_keys().name,
        provider_event_id=provider_event_id, event=event, occurred_at=timezone.now(),
        delivery_id=delivery_id, reason=reason, bounce_type=bounce_type,
    )])


@shared_task(name="comms.apply_sandbox_event", ignore_result=True)
def apply_sandbox_event(**kwargs: str) -> None:
    """The task's former name: messages queued before the rename still carry it."""
    apply_provider_event(**kwargs)


@shared_task(name="comms.deliveries_sweep", ignore_result=True)
def deliveries_sweep() -> int:
    return dispatch.deliveries_sweep() + callback_batches_sweep()


@shared_task(name="comms.process_callback_batch", ignore_result=True)
def process_callback_batch(batch_id: int, alone: bool = False) -> int:
    return callback_batch_process(batch_id=batch_id, alone=alone)


@shared_task(name="comms.scheduled_release", ignore_result=True, expires=30)
def scheduled_release() -> int:
    """Beat's tick: scheduled deliveries now due go to the queue (``comms.scheduling``)."""
    return scheduling.deliveries_release()
