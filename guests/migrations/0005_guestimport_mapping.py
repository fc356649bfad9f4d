"""A guest import keeps its file's columns and the field staff chose for each (the mapping
step), the preview's warnings, and a status for "waiting for the columns"."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("guests", "0004_event_time_zone"),
    ]

    operations = [
        migrations.AddField(
            model_name="guestimport",
            name="mapping",
            field=models.JSONField(blank=True, default=dict, help_text=(
                "The file's columns (headers, samples, delimiter, encoding) and the field "
                "chosen for each.")),
        ),
        migrations.AddField(
            model_name="guestimport",
            name="warnings",
            field=models.JSONField(blank=True, default=list, help_text=(
                "What the preview warns about: formula-looking cells, rows without a name.")),
        ),
        migrations.AlterField(
            model_name="guestimport",
            name="status",
            field=models.CharField(choices=[
                ("mapping", "Mapping"), ("uploaded", "Uploaded"), ("validated", "Validated"),
                ("importing", "Importing"), ("done", "Done"), ("failed", "Failed")],
                default="uploaded", max_length=16),
        ),
    ]
