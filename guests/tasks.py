"""Celery tasks of the guests app: they take ids, call one service, and have stable names."""

from celery import shared_task

from guests import bulk, imports, jobs, reminders


@shared_task(name="guests.validate_import", ignore_result=True)
def validate_import(import_id: str) -> None:
    imports.guest_import_validate(import_id=import_id)


@shared_task(name="guests.import_guests", ignore_result=True)
def import_guests(import_id: str) -> None:
    imports.guest_import_run(import_id=import_id)


@shared_task(name="guests.bulk_send", ignore_result=True)
def bulk_send(job_id: str) -> None:
    bulk.bulk_send_run(job_id=job_id)


@shared_task(name="guests.jobs_sweep", ignore_result=True)
def jobs_sweep() -> int:
    return jobs.guest_jobs_sweep()


@shared_task(name="guests.reminder_rule_fill", ignore_result=True)
def reminder_rule_fill(rule_id: str) -> None:
    reminders.reminder_rule_fill(rule_id=rule_id)
