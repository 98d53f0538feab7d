"""two_factor_reset: a lost phone. The user's devices go, a session verified with one is no
longer verified, and the next sign-in sets up the app again."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice

pytestmark = pytest.mark.django_db


def reset(username: str) -> str:
    out = StringIO()
    call_command("two_factor_reset", username, stdout=out)
    return out.getvalue()


def test_a_reset_removes_the_devices_and_the_verified_state(coordinator_a, two_factor) -> None:
    device = TOTPDevice.objects.create(user=coordinator_a, name="phone", confirmed=True)
    client = Client()
    client.force_login(coordinator_a)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    assert client.get("/today/").status_code == 200

    output = reset("coordinator-a")

    assert output.startswith("removed 1 two-factor device(s) of coordinator-a")
    assert not TOTPDevice.objects.filter(user=coordinator_a).exists()
    assert client.get("/today/").status_code == 302  # to the set-up page


def test_a_user_without_a_device_is_told_so(coordinator_a) -> None:
    output = reset("coordinator-a")
    assert output.strip() == "coordinator-a has no two-factor device: nothing to reset"


def test_an_unknown_user_is_one_line(db) -> None:
    with pytest.raises(CommandError, match="no user named 'nobody'"):
        reset("nobody")
