"""Celery tasks of customer webhooks: they take ids, call one service, and have stable names."""

from celery import shared_task

from webhooks import delivery, services


@shared_task(name="webhooks.deliver_message", ignore_result=True)
def deliver_message(webhook_id: str) -> None:
    delivery.message_deliver(webhook_id=webhook_id)


@shared_task(name="webhooks.messages_sweep", ignore_result=True)
def messages_sweep() -> int:
    return services.messages_sweep()
