"""Celery tasks of sender domains: the beat-driven poller and one check per domain."""

from celery import shared_task

from domains import services


@shared_task(name="domains.sender_domains_poll")
def sender_domains_poll() -> int:
    """Beat entry (CELERY_BEAT_SCHEDULE): enqueue a check of every due unverified domain."""
    return services.sender_domains_poll()


@shared_task(name="domains.sender_domain_check")
def sender_domain_check(sender_domain_id: int) -> None:
    services.sender_domain_check(sender_domain_id=sender_domain_id)
