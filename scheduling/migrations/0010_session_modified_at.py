"""Sessions record when they last changed: a calendar event's DTSTAMP and LAST-MODIFIED and a
feed's Last-Modified. Existing sessions count as changed now."""

import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("scheduling", "0009_reminders_checkins"),
    ]

    operations = [
        migrations.AddField(
            model_name="scheduledsession",
            name="modified_at",
            field=models.DateTimeField(auto_now=True, default=django.utils.timezone.now),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="historicalscheduledsession",
            name="modified_at",
            field=models.DateTimeField(
                blank=True, default=django.utils.timezone.now, editable=False
            ),
            preserve_default=False,
        ),
    ]
