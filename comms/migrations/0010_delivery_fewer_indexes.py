"""Drop three indexes of comms_delivery that composite indexes already cover, and index the
provider's message id for equality only — without locking the table on PostgreSQL.

Django's own operations would drop and re-add the foreign keys (validating every row) and
build the new index inside one transaction holding ACCESS EXCLUSIVE on the hottest table, so
the database side is ``common.migrations_online.indexes_replace`` (CONCURRENTLY, re-runnable).
"""

import django.db.models.deletion
from django.db import migrations, models

from common.migrations_online import indexes_replace


def forwards(apps, schema_editor) -> None:
    indexes_replace(schema_editor, "comms_delivery",
                    drop=[["account_id"], ["attendee_id"], ["provider_message_id"]],
                    create={"delivery_provider_message": ["provider_message_id"]})


class Migration(migrations.Migration):
    atomic = False  # CREATE/DROP INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [
        ('accounts', '0003_rate_limits_idempotent_request'),
        ('comms', '0009_dashboard'),
        ('contacts', '0001_initial'),
        ('guests', '0002_imports_and_bulk_sends'),
        ('templates', '0002_templateversion_alter_messagetemplate_channel_and_more'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(forwards, migrations.RunPython.noop)],
            state_operations=[
                migrations.AlterField(
                    model_name='delivery',
                    name='account',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='deliveries', to='accounts.account'),
                ),
                migrations.AlterField(
                    model_name='delivery',
                    name='attendee',
                    field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='deliveries', to='guests.attendee'),
                ),
                migrations.AlterField(
                    model_name='delivery',
                    name='provider_message_id',
                    field=models.CharField(blank=True, max_length=255),
                ),
                migrations.AddIndex(
                    model_name='delivery',
                    index=models.Index(fields=['provider_message_id'], name='delivery_provider_message'),
                ),
            ],
        ),
    ]
