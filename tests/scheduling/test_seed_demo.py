"""seed_demo: the demo clinic with its staff, a coordinator who can log in with the password
printed once, a dozen participants at different points of their courses; a second run changes
nothing."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import User
from django.contrib.auth.password_validation import validate_password
from django.core.management import call_command
from django.http import HttpRequest
from django.test import Client
from django.urls import reverse

from scheduling import selectors
from scheduling.models import (
    Course,
    Deviation,
    Dyad,
    OpeningHours,
    Participant,
    Reminder,
    Room,
    RoomBooking,
    ScheduledSession,
    Site,
    StaffBooking,
    StaffProfile,
)

pytestmark = pytest.mark.django_db

COMMAND = Path(__file__).resolve().parents[2] / "scheduling/management/commands/seed_demo.py"
PASSWORD = re.compile(r"password (\S+) \(shown only this once\)")
LOGIN = re.compile(r"^login (\S+) \(([a-z ]+)\): password (\S+) \(shown only this once\)$", re.M)
LOGINS_LINE = (
    "demo logins (sign in at /login/): demo-coordinator (coordinator), demo-t1a (therapist), "
    "demo-assessor1 (remote assessor), demo-night (night attendant); passwords are printed "
    "once, when made: `manage.py seed_demo --reset-password` prints new ones, "
    "`manage.py changepassword <user>` sets one"
)
TODAY = date(2027, 6, 15)
MODELS = (
    Site,
    OpeningHours,
    Room,
    User,
    StaffProfile,
    Dyad,
    Participant,
    Course,
    ScheduledSession,
    RoomBooking,
    StaffBooking,
    Deviation,
)


def seed(*args: str) -> str:
    out = StringIO()
    call_command("seed_demo", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def counts() -> dict[str, int]:
    return {model.__name__: model.objects.count() for model in MODELS}


def password_in(output: str) -> str:
    found = PASSWORD.search(output)
    assert found is not None, output
    return found.group(1)


@pytest.fixture
def seeded() -> str:
    with time_machine.travel(datetime(2027, 6, 15, 16, tzinfo=UTC), tick=False):
        return seed()


def test_it_creates_the_demo_site_its_rooms_and_its_staff(seeded: str) -> None:
    site = Site.objects.get(slug="demo")
    assert (site.name, site.timezone, site.country) == ("Demo clinic", "America/New_York", "US")
    hours = OpeningHours.objects.filter(site=site).order_by("weekday")
    assert [(h.weekday, h.opens.hour, h.closes.hour) for h in hours] == [
        (day, 8, 18) for day in range(5)
    ]
    rooms = Room.objects.filter(site=site)
    assert sorted(r.overnight_places for r in rooms if r.kind == "dosing") == [1, 2]
    assert len([r for r in rooms if r.kind == "therapy"]) == 3
    assert Dyad.objects.filter(site=site, active=True).count() == 3
    roles = list(StaffProfile.objects.filter(sites=site).values_list("role", flat=True))
    assert sorted(roles).count("therapist") == 6
    assert roles.count("assessor") == 2
    assert roles.count("night_attendant") == 1
    assert roles.count("coordinator") == 1
    assert "created site demo" in seeded
    assert "created dyad Dyad 3 (demo-t3a, demo-t3b)" in seeded


def test_a_dozen_participants_at_different_points_of_their_courses(seeded: str) -> None:
    site = Site.objects.get(slug="demo")
    participants = Participant.objects.filter(site=site)
    assert participants.count() >= 12
    assert not participants.exclude(code__regex=r"^D-\d{3}$").exists()  # study codes, no names
    for participant in participants:
        assert Course.objects.filter(participant=participant).exists() or (
            Course.objects.filter(partner=participant).exists()
        ), participant.code
    couple = Course.objects.get(protocol_version__protocol__slug="mdma-cbct-couples")
    assert couple.partner is not None
    assert couple.participant.partner == couple.partner
    calendar = selectors.site_calendar(site, first=date(2026, 1, 1), last=date(2027, 12, 31))
    for course in Course.objects.filter(participant__site=site):
        assert calendar.closed_because(course.start_date) is None, course.start_date
    open_sessions = {
        course.participant.code: ScheduledSession.objects.filter(
            course=course, status__in=["planned", "confirmed"]
        ).count()
        for course in Course.objects.select_related("participant")
    }
    finished = [code for code, left in open_sessions.items() if left == 0]
    assert len(finished) >= 2
    assert Course.objects.filter(start_date__gt=TODAY).count() >= 2  # starting next week
    middle = Course.objects.filter(start_date__lt=TODAY).exclude(participant__code__in=finished)
    assert middle.count() >= 4
    # past sessions are completed, future ones are still open
    now = datetime(2027, 6, 15, 16, tzinfo=UTC)
    assert not ScheduledSession.objects.filter(end__lte=now, status="planned").exists()
    assert not ScheduledSession.objects.filter(start__gt=now, status="completed").exists()


def test_one_session_missed_and_one_cancelled_with_their_reasons(seeded: str) -> None:
    missed = Deviation.objects.get(kind="missed")
    cancelled = Deviation.objects.get(kind="cancelled")
    assert missed.session.status == "missed" and missed.reason
    assert cancelled.session.status == "cancelled" and cancelled.reason
    # a cancelled session frees its room and staff
    assert not RoomBooking.objects.filter(session=cancelled.session, active=True).exists()
    assert not StaffBooking.objects.filter(session=cancelled.session, active=True).exists()
    assert f"cancelled D-009 {cancelled.session.key}" in seeded


def test_the_coordinator_logs_in_with_the_printed_password(seeded: str) -> None:
    password = password_in(seeded)
    user = User.objects.get(username="demo-coordinator")
    assert user.is_staff and not user.is_superuser
    validate_password(password, user)  # the clinic's own password rules accept it
    client = Client()
    # django-axes needs the request it counts failures by
    assert client.login(request=HttpRequest(), username="demo-coordinator", password=password)
    assert client.get(reverse("admin:index")).status_code == 200
    assert client.get(reverse("admin:scheduling_scheduledsession_changelist")).status_code == 200
    assert client.get(reverse("admin:protocol_protocolversion_changelist")).status_code == 200
    assert user.has_perm("scheduling.change_site")
    assert user.has_perm("protocol.view_protocolversion")
    assert not user.has_perm("scheduling.delete_scheduledsession")
    # staff other than the four demo logins have no password until someone gives them one
    assert not User.objects.get(username="demo-t1b").has_usable_password()
    assert not User.objects.get(username="demo-assessor2").has_usable_password()


def test_every_role_gets_a_login_printed_with_its_role(seeded: str) -> None:
    printed = {name: (role, password) for name, role, password in LOGIN.findall(seeded)}
    assert {name: role for name, (role, _) in printed.items()} == {
        "demo-coordinator": "coordinator",
        "demo-t1a": "therapist",
        "demo-assessor1": "remote assessor",
        "demo-night": "night attendant",
    }
    roles = dict(
        StaffProfile.objects.filter(user__username__in=printed).values_list(
            "user__username", "role"
        )
    )
    assert roles == {
        "demo-coordinator": StaffProfile.Role.COORDINATOR,
        "demo-t1a": StaffProfile.Role.THERAPIST,
        "demo-assessor1": StaffProfile.Role.ASSESSOR,
        "demo-night": StaffProfile.Role.NIGHT_ATTENDANT,
    }
    passwords = [password for _, password in printed.values()]
    assert len(set(passwords)) == 4  # one each, never shared
    for name, (_, password) in printed.items():
        user = User.objects.get(username=name)
        validate_password(password, user)
        assert user.is_staff == (name == "demo-coordinator")  # the admin: coordinators only
    assert seeded.rstrip().endswith(LOGINS_LINE)


@pytest.mark.parametrize(
    ("username", "sees"),
    [
        ("demo-coordinator", "Today at Demo clinic"),
        ("demo-t1a", "Today at Demo clinic"),
        ("demo-assessor1", "Today at Demo clinic"),
        ("demo-night", "Today at Demo clinic"),
    ],
)
def test_each_demo_login_signs_in_like_make_run_and_lands_on_today(
    seeded: str, username: str, sees: str, settings: Any
) -> None:
    """As `make run` serves it (DEBUG on, so no two-factor step): the login form signs each
    role in, the landing page leads to Today, and every page in the menu answers (no error
    page for an assessor or a night attendant)."""
    settings.DEBUG = True
    settings.TWO_FACTOR_REQUIRED = False
    password = {name: password for name, _, password in LOGIN.findall(seeded)}[username]
    client = Client()
    signed_in = client.post(reverse("login"), {"username": username, "password": password})
    assert signed_in.status_code == 302, signed_in.content.decode()[:500]
    landed = client.get("/", follow=True)
    assert landed.status_code == 200
    assert landed.redirect_chain[-1][0] == reverse("today")
    assert sees in landed.content.decode()
    menu = re.findall(r'<nav aria-label="Main">(.*?)</nav>', landed.content.decode(), re.S)[0]
    for link in re.findall(r'href="([^"]+)"', menu):
        assert client.get(link).status_code == 200, (username, link)


def test_a_second_run_changes_nothing(seeded: str) -> None:
    before = counts()
    password_hash = User.objects.get(username="demo-coordinator").password
    with time_machine.travel(datetime(2027, 6, 16, 16, tzinfo=UTC), tick=False):
        again = seed()
    assert counts() == before
    assert again.strip() == f"site demo is seeded already: nothing changed\n{LOGINS_LINE}"
    assert PASSWORD.search(again) is None  # no password printed again
    assert User.objects.get(username="demo-coordinator").password == password_hash


def test_reset_password_gives_a_new_random_password(seeded: str) -> None:
    first = password_in(seeded)
    output = seed("--reset-password")
    second = password_in(output)
    assert second != first
    assert len(second) >= 20
    assert first not in COMMAND.read_text() and second not in COMMAND.read_text()
    assert Client().login(request=HttpRequest(), username="demo-coordinator", password=second)
    assert not Client().login(request=HttpRequest(), username="demo-coordinator", password=first)
    assert output.startswith("reset demo-coordinator's (coordinator): password ")
    # only the four password lines and the logins: nothing else changed
    assert output.count("\n") == 5
    assert output.count("(shown only this once)") == 4


def test_the_output_never_contains_a_fixed_password(seeded: str) -> None:
    """Seeding another database (here: the same one after removing the coordinator) prints
    another password."""
    first = password_in(seeded)
    # the coordinator's planned escalation emails hold on to them (PROTECT): gone first
    Reminder.objects.filter(staff__username="demo-coordinator").delete()
    User.objects.filter(username="demo-coordinator").delete()
    second = password_in(seed())
    assert first != second


@pytest.mark.parametrize(
    "today",
    # D-011 starts a week after today: the observed July 4th, Thanksgiving, observed Christmas
    [date(2027, 1, 4), date(2027, 6, 28), date(2027, 11, 18), date(2027, 12, 17)],
    ids=str,
)
def test_it_seeds_on_any_day_including_around_holidays(today: date) -> None:
    """Start dates land on open days: US holidays (July 4th, Thanksgiving, Christmas) too."""
    moment = datetime(today.year, today.month, today.day, 15, tzinfo=UTC)
    with time_machine.travel(moment, tick=False):
        output = seed()
    assert Participant.objects.count() >= 12, output
    site = Site.objects.get(slug="demo")
    first = min(Course.objects.values_list("start_date", flat=True))
    calendar = selectors.site_calendar(site, first=first, last=date(2029, 1, 1))
    for start in Course.objects.values_list("start_date", flat=True):
        assert calendar.closed_because(start) is None, start
    next_week = Course.objects.get(participant__code="D-011").start_date
    assert next_week >= today + timedelta(days=7)


def test_a_bad_argument_is_one_line_on_stderr() -> None:
    env = {key: value for key, value in os.environ.items() if key != "PYTHONWARNINGS"}
    done = subprocess.run(
        [sys.executable, "manage.py", "seed_demo", "--reset-pasword"],
        cwd=COMMAND.parents[3],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1
    assert "seed_demo: error: unrecognized arguments: --reset-pasword" in done.stderr


def test_the_night_attendant_works_the_demos_overnight_stays(seeded: str) -> None:
    """demo-night's view can be tried: they are booked on the demo's overnight stays, so Today
    and the calendar show them their nights (and only those), as the README promises."""
    night = User.objects.get(username="demo-night")
    overnight = ScheduledSession.objects.filter(overnight=True)
    booked = ScheduledSession.objects.filter(staff__user=night, staff__active=True).distinct()
    assert booked.exists()
    assert set(booked) <= set(overnight)
    upcoming = booked.filter(start__gt=datetime(2027, 6, 15, 16, tzinfo=UTC)).order_by("start")
    first = upcoming.first()
    assert first is not None
    client = Client()
    client.force_login(night)
    page = client.get(f"/sessions/{first.pk}/")
    assert page.status_code == 200
    assert first.title in page.content.decode()


def test_the_demo_has_reminders_to_look_at(seeded: str) -> None:
    """Participants with an address and consent: their coming sessions' reminders are planned,
    and the past ones were never due to anyone."""
    from scheduling.models import Reminder

    upcoming = Reminder.objects.filter(participant__code="D-011", status="pending")
    assert upcoming.filter(channel="email").exists()
    assert not upcoming.exclude(channel="email").exists()
    assert Reminder.objects.filter(participant__code="D-012", status="pending", channel="sms")
    finished = Reminder.objects.filter(participant__code="D-001")
    assert not finished.filter(status__in=["pending", "sending", "sent"]).exists()
