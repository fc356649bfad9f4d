"""The key's mode becomes part of the two-step send's idempotency keys and of suppressions.

Existing rows take the mode of the delivery they point at (a sandbox bounce recorded before
this migration stops blocking live sends); a suppression without a delivery stays live.
"""

from django.db import migrations, models
from django.db.models import OuterRef, Subquery


def modes_from_deliveries(apps, schema_editor) -> None:
    Delivery = apps.get_model("comms", "Delivery")
    mode = Subquery(Delivery.objects.filter(id=OuterRef("delivery_id")).values("mode")[:1])
    apps.get_model("comms", "IdempotencyRecord").objects.update(mode=mode)
    apps.get_model("comms", "Suppression").objects.filter(
        delivery__mode="test").update(mode="test")


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0003_rate_limits_idempotent_request'),
        ('comms', '0010_delivery_fewer_indexes'),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name='idempotencyrecord',
            name='idempotency_key_once',
        ),
        migrations.RemoveConstraint(
            model_name='suppression',
            name='suppression_active_once',
        ),
        migrations.AddField(
            model_name='idempotencyrecord',
            name='mode',
            field=models.CharField(choices=[('live', 'Live'), ('test', 'Test')], default='live', max_length=8),
        ),
        migrations.AddField(
            model_name='suppression',
            name='mode',
            field=models.CharField(choices=[('live', 'Live'), ('test', 'Test')], default='live', max_length=8),
        ),
        migrations.RunPython(modes_from_deliveries, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name='idempotencyrecord',
            constraint=models.UniqueConstraint(fields=('account', 'mode', 'key'), name='idempotency_key_once_per_mode'),
        ),
        migrations.AddConstraint(
            model_name='suppression',
            constraint=models.UniqueConstraint(condition=models.Q(('removed_at__isnull', True)), fields=('account', 'mode', 'channel', 'address'), name='suppression_active_once_per_mode'),
        ),
    ]
