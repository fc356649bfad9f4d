"""Tag the deliveries of bulk sends made before deliveries named their send (``refs.bulkSendId``,
``guests.bulk.JOB_REF``), so progress counts every send by its tag alone: a job's deliveries
are its template's, in its mode, to its event's guests, created while it ran."""

from django.db import migrations

JOB_REF = "bulkSendId"
BATCH = 1000


def tag_deliveries(apps, schema_editor) -> None:
    BulkSend = apps.get_model("guests", "BulkSend")
    Attendee = apps.get_model("guests", "Attendee")
    Delivery = apps.get_model("comms", "Delivery")
    for job in BulkSend.objects.exclude(started_at=None).filter(queued__gt=0).iterator():
        deliveries = Delivery.objects.filter(
            account_id=job.account_id, mode=job.mode, template_id=job.template_id,
            created_at__gte=job.started_at,
            owner_id__in=Attendee.objects.filter(event_id=job.event_id).values("id"))
        if job.finished_at is not None:
            deliveries = deliveries.filter(created_at__lte=job.finished_at)
        batch = []
        for delivery in deliveries.only("id", "refs").iterator():
            if JOB_REF in (delivery.refs or {}):
                continue
            delivery.refs = {**(delivery.refs or {}), JOB_REF: str(job.id)}
            batch.append(delivery)
            if len(batch) >= BATCH:
                Delivery.objects.bulk_update(batch, ["refs"])
                batch = []
        Delivery.objects.bulk_update(batch, ["refs"])


class Migration(migrations.Migration):

    dependencies = [
        ("guests", "0006_attendee_verbose_name"),
        ("comms", "0014_channel_and_service_labels"),
    ]

    operations = [migrations.RunPython(tag_deliveries, migrations.RunPython.noop)]
