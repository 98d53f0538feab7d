"""Live calendar feeds: a secret address per feed, stored as its SHA-256 only, revocable."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("scheduling", "0011_site_caldav"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="CalendarFeed",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "scope",
                    models.CharField(
                        choices=[
                            ("participant", "Participant"),
                            ("therapist", "staff member"),
                            ("room", "Room"),
                            ("site", "Site"),
                            ("mine", "my sessions"),
                        ],
                        max_length=20,
                    ),
                ),
                ("target", models.PositiveBigIntegerField(blank=True, null=True)),
                ("name", models.CharField(max_length=100)),
                ("for_participant", models.BooleanField(default=False)),
                ("token_hash", models.CharField(editable=False, max_length=64, unique=True)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("revoked_at", models.DateTimeField(blank=True, null=True)),
                ("last_used_at", models.DateTimeField(blank=True, null=True)),
                ("validator", models.CharField(blank=True, editable=False, max_length=64)),
                ("etag", models.CharField(blank=True, editable=False, max_length=70)),
                ("changed_at", models.DateTimeField(blank=True, editable=False, null=True)),
                (
                    "owner",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="calendar_feeds",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "ordering": ["-created_at", "-pk"],
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(
                            models.Q(("scope", "mine"), ("target__isnull", True)),
                            models.Q(
                                models.Q(("scope", "mine"), _negated=True),
                                ("target__isnull", False),
                            ),
                            _connector="OR",
                        ),
                        name="feed_target_for_scope",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(
                            ("for_participant", False), ("scope", "participant"), _connector="OR"
                        ),
                        name="feed_for_participant_is_participant",
                    ),
                ],
            },
        ),
    ]
