"""``manage.py two_factor_reset <username>``: for a member of staff who lost or replaced the
phone with their authenticator app. Their devices go, and so do their sessions that were
verified with them; at the next sign-in they set up the app again from a new QR code."""

import logging
from typing import Any

from django.contrib.auth.models import User
from django.core.management.base import CommandError, CommandParser
from django_otp import devices_for_user

from config.commands import OneLineErrorCommand

logger = logging.getLogger(__name__)


class Command(OneLineErrorCommand):
    help = (
        "Remove a user's two-factor devices (a lost or replaced phone): they set up their "
        "authenticator app again at their next sign-in. Check who is asking first."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username", help="the user name they sign in with")

    def handle(self, *args: Any, **options: Any) -> None:
        username: str = options["username"]
        user = User.objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"no user named {username!r}; check the spelling in the admin")
        devices = list(devices_for_user(user, confirmed=None))
        if not devices:
            self.stdout.write(f"{username} has no two-factor device: nothing to reset")
            return
        for device in devices:
            device.delete()
        logger.warning("Two-factor devices of user id %s removed by two_factor_reset", user.pk)
        self.stdout.write(
            f"removed {len(devices)} two-factor device(s) of {username}: they set up their "
            "authenticator app again at their next sign-in"
        )
