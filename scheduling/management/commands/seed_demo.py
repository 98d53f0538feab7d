"""A demo clinic to click through after `make run`: a site with rooms, dyads and staff, a
login for every role (coordinator, therapist, remote assessor, night attendant), and a dozen
participants at different points of their courses, enrolled and
updated through the services like real ones. Safe to re-run: what exists is left alone."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import date, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.contrib.auth.models import Permission, User
from django.core.management.base import CommandError, CommandParser
from django.db import transaction
from django.utils import timezone

from config.commands import OneLineErrorCommand
from scheduling import selectors, services
from scheduling.models import (
    Course,
    Dyad,
    OpeningHours,
    Participant,
    Room,
    ScheduledSession,
    Site,
    StaffProfile,
)

SLUG = "demo"
COORDINATOR = "demo-coordinator"
ZONE = "America/New_York"
WHO = "demo seed"
#: the demo's courses are under way: those that started before today are back-entries
BACK_ENTRY = "demo data: a course already under way"
#: the demo's night attendant, booked on its overnight stays
NIGHT = "demo-night"
#: one login per role, so that each view can be tried: user name -> the role's name
LOGINS = {
    COORDINATOR: "coordinator",
    "demo-t1a": "therapist",
    "demo-assessor1": "remote assessor",
    NIGHT: "night attendant",
}
#: open days tried after a participant's intended start date when it cannot be booked
START_TRIES = 30


@dataclass(frozen=True)
class DemoParticipant:
    code: str
    protocol: str
    #: course start relative to today (moved forward to the next open day)
    start_in_days: int
    partner: str | None = None
    #: the key of a past session marked missed instead of completed
    misses: str | None = None
    #: the key of a future session that is cancelled
    cancels: str | None = None


# A mapp-ptsd course runs about nine months to its follow-up, a couples course about eight.
PARTICIPANTS = (
    DemoParticipant("D-001", "mapp-ptsd", -330),  # finished
    DemoParticipant("D-002", "mapp-ptsd", -300),  # finished
    DemoParticipant("D-003", "mapp-ptsd", -200),  # waiting for the follow-up
    DemoParticipant("D-004", "mapp-ptsd", -120, misses="phone-1.2"),
    DemoParticipant("D-005", "mapp-ptsd", -80),
    DemoParticipant("D-006", "mapp-ptsd", -50),
    DemoParticipant("D-007", "mdma-cbct-couples", -35, partner="D-008"),
    DemoParticipant("D-009", "mapp-ptsd", -20, cancels="integration-1b"),
    DemoParticipant("D-010", "mapp-ptsd", -6),
    DemoParticipant("D-011", "mapp-ptsd", 7),  # starts next week
    DemoParticipant("D-012", "mapp-ptsd", 9),
)

ROOMS = (
    # singles take the first dosing room that fits, so the couples' room stays free for them
    ("Dosing room A", Room.Kind.DOSING, 1),
    ("Dosing room B (couples)", Room.Kind.DOSING, 2),
    ("Therapy room 1", Room.Kind.THERAPY, 0),
    ("Therapy room 2", Room.Kind.THERAPY, 0),
    ("Therapy room 3", Room.Kind.THERAPY, 0),
)

#: what the coordinator may do in the admin
PERMISSION_APPS = ("scheduling", "protocol")


class Command(OneLineErrorCommand):
    help = (
        "Create the demo clinic (site 'demo'), its staff, a login for every role and a dozen "
        "participants at different points of their courses; print the logins. Safe to re-run."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--reset-password",
            action="store_true",
            help=f"give the demo logins ({', '.join(LOGINS)}) new random passwords (printed once)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        lines: list[str] = []
        try:
            with transaction.atomic():  # all or nothing: a failed seed leaves no half clinic
                site = _site(lines)
                _staff(site, lines)
                _coordinator(site, lines)
                _passwords(lines, reset=options["reset_password"])
                _participants(site, lines)
        except services.BookingConflict as exc:  # someone else is booking at the demo site
            raise CommandError(str(exc)) from exc
        for line in lines:
            self.stdout.write(line)
        if not lines:
            self.stdout.write(f"site {SLUG} is seeded already: nothing changed")
        self.stdout.write(
            "demo logins (sign in at /login/): "
            + ", ".join(f"{name} ({role})" for name, role in LOGINS.items())
            + "; passwords are printed once, when made: `manage.py seed_demo --reset-password` "
            "prints new ones, `manage.py changepassword <user>` sets one"
        )


def _site(lines: list[str]) -> Site:
    site, created = Site.objects.get_or_create(
        slug=SLUG,
        defaults={
            "name": "Demo clinic",
            "timezone": ZONE,
            "country": "US",
            "address": "100 Example Street, Suite 4\nNew York, NY 10001",
            "phone": "+1 212 555 0100",
        },
    )
    if created:
        lines.append(f"created site {SLUG} (Demo clinic, {ZONE}, closed on US public holidays)")
    for weekday in range(5):
        hours, created = OpeningHours.objects.get_or_create(
            site=site, weekday=weekday, defaults={"opens": time(8), "closes": time(18)}
        )
        if created:
            lines.append(f"created opening hours {hours}")
    for name, kind, places in ROOMS:
        room, created = Room.objects.get_or_create(
            site=site, name=name, defaults={"kind": kind, "overnight_places": places}
        )
        if created:
            beds = f", {places} overnight places" if places else ""
            lines.append(f"created room {room.name} ({room.kind}{beds})")
    return site


def _user(username: str, lines: list[str], **fields: Any) -> User:
    user, created = User.objects.get_or_create(username=username, defaults=fields)
    if created:
        user.set_unusable_password()  # staff without a login until someone gives them one
        user.save(update_fields=["password"])
        lines.append(f"created user {username}")
    return user


def _profile(user: User, role: str, site: Site, lines: list[str]) -> None:
    profile, created = StaffProfile.objects.get_or_create(user=user, defaults={"role": role})
    if created:
        lines.append(f"created staff profile {user.username} ({role}) at {site.slug}")
    if not profile.sites.filter(pk=site.pk).exists():
        profile.sites.add(site)
        if not created:
            lines.append(f"added {user.username} to site {site.slug}")


def _staff(site: Site, lines: list[str]) -> None:
    for n in (1, 2, 3):
        pair = []
        for side in ("a", "b"):
            user = _user(f"demo-t{n}{side}", lines, first_name=f"Therapist {n}{side.upper()}")
            _profile(user, StaffProfile.Role.THERAPIST, site, lines)
            pair.append(user)
        dyad, created = Dyad.objects.get_or_create(
            site=site,
            name=f"Dyad {n}",
            defaults={"therapist_a": pair[0], "therapist_b": pair[1]},
        )
        if created:
            lines.append(f"created dyad {dyad.name} (demo-t{n}a, demo-t{n}b)")
    for n in (1, 2):
        user = _user(f"demo-assessor{n}", lines, first_name=f"Assessor {n}")
        _profile(user, StaffProfile.Role.ASSESSOR, site, lines)
    night = _user(NIGHT, lines, first_name="Night attendant")
    _profile(night, StaffProfile.Role.NIGHT_ATTENDANT, site, lines)


def _coordinator(site: Site, lines: list[str]) -> None:
    user, created = User.objects.get_or_create(
        username=COORDINATOR, defaults={"is_staff": True, "first_name": "Demo coordinator"}
    )
    if created:
        user.set_unusable_password()  # _passwords gives it one and prints it
        user.save(update_fields=["password"])
        lines.append(f"created user {COORDINATOR}")
    _profile(user, StaffProfile.Role.COORDINATOR, site, lines)
    wanted = Permission.objects.filter(content_type__app_label__in=PERMISSION_APPS).filter(
        codename__regex=r"^(view|change)_"
    )
    missing = wanted.exclude(pk__in=user.user_permissions.values("pk"))
    added = list(missing)
    if added:
        user.user_permissions.add(*added)
        lines.append(
            f"granted {COORDINATOR} {len(added)} permissions (view and change "
            f"{' and '.join(PERMISSION_APPS)})"
        )


def _passwords(lines: list[str], *, reset: bool) -> None:
    """A random password for each demo login that has none yet (or for all of them with
    ``reset``), printed once with the role: never a fixed password, even for a demo."""
    for username, role in LOGINS.items():
        user = User.objects.get(username=username)
        if user.has_usable_password() and not reset:
            continue
        fresh = not user.has_usable_password()
        password = secrets.token_urlsafe(16)
        user.set_password(password)
        user.save(update_fields=["password"])
        what = f"login {username} ({role})" if fresh else f"reset {username}'s ({role})"
        lines.append(f"{what}: password {password} (shown only this once)")


def _participants(site: Site, lines: list[str]) -> None:
    zone = ZoneInfo(site.timezone)
    today = timezone.localdate(timezone=zone)
    now = timezone.now()
    existing = set(Participant.objects.filter(site=site).values_list("code", flat=True))
    for demo in PARTICIPANTS:
        if demo.code in existing:
            continue
        start, course = _enrol(site, demo, _open_day(site, today + timedelta(demo.start_in_days)))
        couple = f" with partner {demo.partner}" if demo.partner else ""
        lines.append(
            f"enrolled {demo.code}{couple} in {demo.protocol} starting {start.isoformat()} "
            f"(dyad {course.dyad})"
        )
        sessions = list(ScheduledSession.objects.filter(course=course).order_by("start", "key"))
        nights = _book_nights(sessions)
        if nights:
            lines.append(
                f"booked {NIGHT} on {nights} overnight stay{'s' * (nights != 1)} of {demo.code}"
            )
        past = [s for s in sessions if s.end <= now]
        missed = next((s for s in past if s.key == demo.misses), None)
        for session in past:
            if session is missed:
                services.session_set_status(
                    session=session,
                    status=ScheduledSession.Status.MISSED,
                    by=None,
                    reason="the participant did not answer the check-in call",
                )
                lines.append(f"marked {demo.code} {session.key} missed")
            else:
                services.session_set_status(
                    session=session, status=ScheduledSession.Status.COMPLETED, by=None, reason=WHO
                )
        if past:
            done = len(past) - (missed is not None)
            lines.append(f"marked {done} past session{'s' * (done != 1)} of {demo.code} completed")
        cancelled = next((s for s in sessions if s.start > now and s.key == demo.cancels), None)
        if cancelled is not None:
            services.session_set_status(
                session=cancelled,
                status=ScheduledSession.Status.CANCELLED,
                by=None,
                reason="the participant is travelling that week",
            )
            lines.append(f"cancelled {demo.code} {cancelled.key}")


def _book_nights(sessions: list[ScheduledSession]) -> int:
    """Book the demo's night attendant on a course's overnight stays (those of another
    course the same night excepted: one person, one night), so that their view, the nights
    they work, can be tried. How many were booked."""
    night = User.objects.filter(username=NIGHT).first()
    booked = 0
    for session in sessions:
        if night is None or not session.overnight:
            continue
        try:
            services.night_attendant_book(session=session, attendant=night, by=None)
        except services.BookingConflict:
            continue  # another participant's stay that night has them already
        booked += 1
    return booked


def _contact(code: str) -> dict[str, Any]:
    """Reminders to see on the demo's pages: an example.org address (a domain that receives
    no mail) with consent, and for one participant a text-message number from the range kept
    for fiction (555-01xx)."""
    consent = timezone.now()
    if code == "D-012":
        return {"phone": "+1 202 555 0112", "preferred_channel": "sms", "sms_consent_at": consent}
    return {
        "email": f"{code.lower()}@example.org",
        "preferred_channel": "email",
        "email_consent_at": consent,
    }


def _enrol(site: Site, demo: DemoParticipant, start: date) -> tuple[date, Course]:
    """Enrol on ``start`` or, when the course cannot be booked from then, on one of the next
    open days: the planner places sessions one by one and never moves an earlier one to make
    room for a later one, so another course's dosing day can block a whole start date."""
    problem = ""
    for _ in range(START_TRIES):
        try:
            course = services.participant_enrol(
                site=site,
                code=demo.code,
                protocol_slug=demo.protocol,
                start_date=start,
                by=None,
                partner_code=demo.partner,
                back_entry_reason=BACK_ENTRY,
                contact=_contact(demo.code),
            )
        except services.SchedulingError as exc:
            problem = str(exc)
            start = _open_day(site, start + timedelta(days=1))
        else:
            return start, course
    raise CommandError(f"{demo.code} could not be enrolled near {start.isoformat()}: {problem}")


def _open_day(site: Site, day: date) -> date:
    """``day``, or the next day the site is open (weekends and US holidays close it)."""
    calendar = selectors.site_calendar(site, first=day, last=day + timedelta(days=31))
    while calendar.closed_because(day):
        day += timedelta(days=1)
    return day
