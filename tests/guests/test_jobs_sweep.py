"""Imports and bulk sends whose task was lost (broker down when queued) or whose worker died
are queued again by the beat sweeper, and resume without duplicating anything."""

import uuid
from datetime import timedelta

from django.utils import timezone

from comms.models import Delivery
from guests.bulk import bulk_send_create
from guests.imports import guest_import_confirm, guest_import_create
from guests.jobs import guest_jobs_sweep
from guests.models import Attendee, BulkSend, GuestImport
from guests.services import event_create
from templates.services import template_create

CSV = ("id,firstName,lastName,email\n" + "".join(
    f"{uuid.uuid4()},G{i},Guest,g{i}@example.com\n" for i in range(5))).encode()


def _age(model, pk, seconds: int = 3600) -> None:
    model.objects.filter(pk=pk).update(updated_at=timezone.now() - timedelta(seconds=seconds))


def test_a_lost_validation_and_a_lost_import_are_queued_again(keys,
                                                              django_capture_on_commit_callbacks):
    event = event_create(account=keys.account, name="Gala")
    with django_capture_on_commit_callbacks(execute=False):  # the broker was down
        guest_import = guest_import_create(event=event, user=None, filename="g.csv", data=CSV)
    assert GuestImport.objects.get(pk=guest_import.pk).status == GuestImport.Status.UPLOADED
    assert guest_jobs_sweep() == 0  # not overdue yet
    _age(GuestImport, guest_import.pk)
    assert guest_jobs_sweep() == 1
    assert GuestImport.objects.get(pk=guest_import.pk).status == GuestImport.Status.VALIDATED
    with django_capture_on_commit_callbacks(execute=False):
        assert guest_import_confirm(guest_import=GuestImport.objects.get(pk=guest_import.pk))
    _age(GuestImport, guest_import.pk)
    assert guest_jobs_sweep() == 1
    assert GuestImport.objects.get(pk=guest_import.pk).status == GuestImport.Status.DONE
    assert Attendee.objects.filter(event=event).count() == 5
    _age(GuestImport, guest_import.pk)
    assert guest_jobs_sweep() == 0  # done jobs are left alone


def test_a_lost_bulk_send_is_queued_again_and_sends_once(keys,
                                                         django_capture_on_commit_callbacks):
    event = event_create(account=keys.account, name="Gala")
    with django_capture_on_commit_callbacks(execute=True):
        guest_import = guest_import_create(event=event, user=None, filename="g.csv", data=CSV)
    with django_capture_on_commit_callbacks(execute=True):
        guest_import_confirm(guest_import=GuestImport.objects.get(pk=guest_import.pk))
    template = template_create(account=keys.account, name="T", subject="Hi {{ firstName }}",
                               text_body="Hello")
    with django_capture_on_commit_callbacks(execute=False):
        job, created = bulk_send_create(event=event, template_id=template.id, mode="test",
                                        audience="all", token=uuid.uuid4(), user=None)
    assert created and Delivery.objects.count() == 0
    _age(BulkSend, job.pk)
    assert guest_jobs_sweep() == 1
    assert BulkSend.objects.get(pk=job.pk).status == BulkSend.Status.DONE
    assert Delivery.objects.count() == 5
    # A second wave (say the first task arrives late after all) adds nothing.
    from guests.bulk import bulk_send_run

    bulk_send_run(job_id=job.pk)
    assert Delivery.objects.count() == 5
