"""Suppressions get a topic: "" stops every message (bounces, drops, spam reports, as
before), a template category's topic or "*" (every topic) only the messages of that topic.
An unsubscribe recorded before topics existed becomes "*": it stops every topic's mail, and no
longer a ticket (transactional mail is never unsubscribable)."""

from django.db import migrations, models

UNSUBSCRIBES_TO_EVERY_TOPIC = (
    "UPDATE comms_suppression SET topic = '*' WHERE reason = 'unsubscribed' AND topic = ''")


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0004_quiet_hours'),
        ('comms', '0015_scheduled_and_cancelled'),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name='suppression',
            name='suppression_active_once_per_mode',
        ),
        migrations.AddField(
            model_name='suppression',
            name='topic',
            field=models.CharField(blank=True, default='', max_length=64),
        ),
        migrations.RunSQL(UNSUBSCRIBES_TO_EVERY_TOPIC, migrations.RunSQL.noop),
        migrations.AddConstraint(
            model_name='suppression',
            constraint=models.UniqueConstraint(
                condition=models.Q(('removed_at__isnull', True)),
                fields=('account', 'mode', 'channel', 'address', 'topic'),
                name='suppression_active_once_per_topic'),
        ),
    ]
