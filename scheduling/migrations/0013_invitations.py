"""Calendar invitations to staff (iTIP REQUEST and CANCEL) go through the reminders outbox as
rows of their own purpose."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("scheduling", "0012_calendar_feeds"),
    ]

    operations = [
        migrations.AlterField(
            model_name="reminder",
            name="purpose",
            field=models.CharField(
                choices=[
                    ("reminder", "Reminder"),
                    ("moved", "moved notice"),
                    ("escalation", "check-in escalation"),
                    ("invitation", "calendar invitation"),
                ],
                default="reminder",
                max_length=20,
            ),
        ),
    ]
