"""A delivery records the API request that made it (its X-Request-Id), for spec 004's
webhooks. A nullable column without a database default: no table rewrite."""

from django.db import migrations, models

import common.request_id


class Migration(migrations.Migration):
    dependencies = [
        ("comms", "0012_delivery_owner"),
    ]

    operations = [
        migrations.AddField(
            model_name="delivery",
            name="request_id",
            field=models.CharField(blank=True, default=common.request_id.current,
                                   editable=False, max_length=128, null=True),
        ),
    ]
