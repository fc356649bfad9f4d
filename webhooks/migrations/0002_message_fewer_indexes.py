"""Drop the single-column indexes of webhooks_message's endpoint and delivery event (the
composite webhook_message_ep and webhook_message_once lead with them), without locking the
table (``common.migrations_online``)."""

import django.db.models.deletion
from django.db import migrations, models

from common.migrations_online import indexes_replace


def forwards(apps, schema_editor) -> None:
    indexes_replace(schema_editor, "webhooks_message",
                    drop=[["delivery_event_id"], ["endpoint_id"]])


class Migration(migrations.Migration):
    atomic = False  # DROP INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [
        ('comms', '0010_delivery_fewer_indexes'),
        ('webhooks', '0001_initial'),
    ]

    operations = [migrations.SeparateDatabaseAndState(
        database_operations=[migrations.RunPython(forwards, migrations.RunPython.noop)],
        state_operations=[
        migrations.AlterField(
            model_name='message',
            name='delivery_event',
            field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='webhook_messages', to='comms.deliveryevent'),
        ),
        migrations.AlterField(
            model_name='message',
            name='endpoint',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='messages', to='webhooks.endpoint'),
        ),
    ])]
