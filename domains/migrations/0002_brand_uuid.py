import uuid

from django.db import migrations, models


def fill_uuids(apps, schema_editor):
    Brand = apps.get_model("domains", "Brand")
    for brand in Brand.objects.filter(uuid__isnull=True).only("id"):
        Brand.objects.filter(id=brand.id).update(uuid=uuid.uuid4())


class Migration(migrations.Migration):
    """Brand's public id (spec 003's BrandId): added nullable, filled per row, then unique."""

    dependencies = [("domains", "0001_initial")]

    operations = [
        migrations.AddField(model_name="brand", name="uuid",
                            field=models.UUIDField(null=True, editable=False)),
        migrations.RunPython(fill_uuids, migrations.RunPython.noop),
        migrations.AlterField(model_name="brand", name="uuid",
                              field=models.UUIDField(default=uuid.uuid4, editable=False,
                                                     unique=True)),
    ]
