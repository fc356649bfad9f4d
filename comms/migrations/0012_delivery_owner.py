"""The engine knows no front end: a delivery's ``attendee`` and ``contact`` foreign keys
become what it belongs to (``owner_type`` + ``owner_id``), the ids its webhooks carry
(``refs``) and, for a guest's messages not yet sent, the render context and recipient name
the guests front end now stores at creation. Nothing is lost: every attendee and contact
link is copied before the columns go. The two-step send's ``IdempotencyRecord`` goes (the
one idempotency mechanism of every POST replaced it).
"""

import django.db.models.deletion
from django.db import migrations, models

_TIME = "to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || '+00:00'"


def owners_copy(apps, schema_editor) -> None:
    content_types = apps.get_model("contenttypes", "ContentType").objects
    attendee, _ = content_types.get_or_create(app_label="guests", model="attendee")
    contact, _ = content_types.get_or_create(app_label="contacts", model="contact")
    deliveries = apps.get_model("comms", "Delivery")._meta.db_table
    attendees = apps.get_model("guests", "Attendee")._meta.db_table
    events = apps.get_model("guests", "Event")._meta.db_table
    run = schema_editor.execute
    run(f"UPDATE {deliveries} d SET owner_type_id = %s, owner_id = d.attendee_id,"
        " refs = jsonb_build_object('attendeeId', d.attendee_id::text,"
        " 'eventId', a.event_id::text)"
        f" FROM {attendees} a WHERE a.id = d.attendee_id", [attendee.id])
    run(f"UPDATE {deliveries} SET owner_type_id = %s, owner_id = contact_id"
        " WHERE contact_id IS NOT NULL AND attendee_id IS NULL", [contact.id])
    run(f"UPDATE {deliveries} SET refs = coalesce(refs, '{{}}'::jsonb)"
        " || jsonb_build_object('contactId', contact_id::text) WHERE contact_id IS NOT NULL")
    # A guest's message still to render or to send: the context the dispatcher used to read
    # from the attendee and its event, as the guests front end now stores it.
    run(f"UPDATE {deliveries} d SET context = jsonb_build_object("
        " 'firstName', a.first_name, 'lastName', a.last_name, 'attendeeId', a.id::text,"
        " '_to_name', btrim(a.first_name || ' ' || a.last_name), 'event', jsonb_build_object("
        " 'id', e.id::text, 'name', e.name, 'venue', e.venue,"
        f" 'startsAt', {_TIME.format('e.starts_at')}, 'endsAt', {_TIME.format('e.ends_at')}))"
        " || coalesce(d.context, '{}'::jsonb)"
        f" FROM {attendees} a JOIN {events} e ON e.id = a.event_id WHERE a.id = d.attendee_id"
        " AND (d.template_version IS NULL OR d.status IN ('queued', 'sending'))")
    # The new foreign key's checks now, not at commit: the columns go in this transaction.
    run("SET CONSTRAINTS ALL IMMEDIATE")


def owners_back(apps, schema_editor) -> None:
    """Unapplying: the attendee and contact links back from the owners."""
    content_types = apps.get_model("contenttypes", "ContentType").objects
    deliveries = apps.get_model("comms", "Delivery")._meta.db_table
    for field, app, model in (("attendee_id", "guests", "attendee"),
                              ("contact_id", "contacts", "contact")):
        kind = content_types.filter(app_label=app, model=model).first()
        if kind is not None:
            schema_editor.execute(f"UPDATE {deliveries} SET {field} = owner_id"
                                  " WHERE owner_type_id = %s", [kind.id])
    schema_editor.execute("SET CONSTRAINTS ALL IMMEDIATE")


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0003_rate_limits_idempotent_request'),
        ('comms', '0011_mode_in_rules'),
        ('contacts', '0001_initial'),
        ('contenttypes', '0002_remove_content_type_name'),
        ('guests', '0003_attendee_mode'),
        ('templates', '0002_templateversion_alter_messagetemplate_channel_and_more'),
    ]

    operations = [
        migrations.AddField(
            model_name='delivery',
            name='owner_id',
            field=models.UUIDField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='delivery',
            name='owner_type',
            field=models.ForeignKey(blank=True, db_index=False, null=True,
                                    on_delete=django.db.models.deletion.PROTECT,
                                    related_name='+', to='contenttypes.contenttype'),
        ),
        migrations.AddField(
            model_name='delivery',
            name='refs',
            field=models.JSONField(blank=True, null=True),
        ),
        migrations.RunPython(owners_copy, owners_back),
        migrations.RemoveIndex(
            model_name='delivery',
            name='delivery_pair_latest',
        ),
        migrations.RemoveField(
            model_name='delivery',
            name='attendee',
        ),
        migrations.RemoveField(
            model_name='delivery',
            name='contact',
        ),
        migrations.AddIndex(
            model_name='delivery',
            index=models.Index(fields=['owner_id', 'template', '-created_at'],
                               name='delivery_pair_latest'),
        ),
        migrations.DeleteModel(
            name='IdempotencyRecord',
        ),
    ]
