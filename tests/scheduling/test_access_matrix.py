"""The authorization matrix: every route the URL resolver knows, for every persona, read and
written with real ids of objects that persona must not see (another site's, and within the
site what the role does not reach), answers 404/403 (or asks to log in) and changes nothing in
the database. Objects a persona may read but not change are written to as well: nothing
changes. A route without a rule here fails the test, so a new door cannot open unnoticed."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth.models import User
from django.db import connection
from django.db.models import Model
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from protocol.models import Protocol, ProtocolVersion, SessionTemplate
from scheduling import services
from scheduling.models import (
    AccessLog,
    CalendarFeed,
    CalendarPush,
    CheckInOutcome,
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
    SiteCalDav,
    SiteClosure,
    StaffBooking,
    StaffProfile,
    Unavailability,
)
from tests.conftest import make_site, make_staff, once_over

pytestmark = pytest.mark.django_db(transaction=False)

DENIED = {302, 401, 403, 404, 405}
#: study codes that must never show to a persona who may not see them
CODE_A_TREATED, CODE_A_OTHER, CODE_B = "PA-TREATED7", "PA-OTHER7", "PB-ONLY7"
#: a revoked calendar feed's token (its address must answer 404)
REVOKED_TOKEN = "matrix-revoked-feed-token"  # noqa: S105  # revoked: opens nothing


# --- the routes ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    name: str  # namespace:name, or the pattern for unnamed ones
    pattern: str  # a regex of the whole path
    params: tuple[str, ...]  # named groups, or positional ones as _0, _1


def walk(patterns: list[Any], prefix: str = "", namespace: str = "") -> Iterator[Route]:
    for entry in patterns:
        regex = entry.pattern.regex.pattern.lstrip("^").rstrip("$").replace(r"\Z", "")
        if isinstance(entry, URLResolver):
            ns = entry.namespace or ""
            inner = f"{namespace}:{ns}".strip(":") if ns else namespace
            yield from walk(entry.url_patterns, prefix + regex, inner)
        elif isinstance(entry, URLPattern):
            name = f"{namespace}:{entry.name}".strip(":") if entry.name else prefix + regex
            compiled = re.compile(prefix + regex)
            named = tuple(compiled.groupindex)
            positional = tuple(f"_{i}" for i in range(compiled.groups - len(named)))
            yield Route(name, prefix + regex, named or positional)


def all_routes() -> list[Route]:
    return list(walk(get_resolver().url_patterns))


#: what each route of the pages and the API is about: a model its id names, "protocol" (a
#: protocol version by slug and number), "list" (no id: whatever the user may see), or
#: "public" (log in, log out, health: nothing to protect)
PAGE_AND_API_RULES: dict[str, Any] = {
    "landing": "list",
    "today": "list",
    "participants": "list",
    "calendar": "list",
    "participant-new": "list",
    "participant": Participant,
    "participant-schedule": Participant,
    "participant-reminder-settings": Participant,
    "participant-planned-vs-actual": Participant,
    "exports": "list",
    "site-sessions-export": Site,
    "hook-sms": "signed",  # the SMS provider's webhook: no login, its signature is the key
    "calendar-participant": Participant,
    "calendar-staff": User,
    "calendar-room": Room,
    "calendar-site": Site,
    "calendar-mine": "list",
    "me": "list",
    "site-caldav": Site,
    "calendar-feeds": "list",
    "calendar-feed-revoke": CalendarFeed,
    "participant-calendar-feed": Participant,
    "feed": "token",  # a calendar feed: no login, its secret token is the key
    "session": ScheduledSession,
    "session-checkin": ScheduledSession,
    "protocols": "protocol-list",
    "protocol-import": "list",
    "protocol-version": "protocol",
    "protocol-export": "protocol",
    "login": "public",
    "logout": "public",
    "healthz": "public",
    "api:token": "public",
    "api:sites": "list",
    "api:site": Site,
    "api:rooms": "list",
    "api:room": Room,
    "api:staff-list": "list",
    "api:staff": User,
    "api:dyads": "list",
    "api:dyad": Dyad,
    "api:protocols": "protocol-list",
    "api:protocol": "protocol",
    "api:protocol-export": "protocol",
    "api:participants": "list",
    "api:participant": Participant,
    "api:participant-sessions": Participant,
    "api:participant-reminders": Participant,
    "api:sessions": "list",
    "api:session": ScheduledSession,
    "api:session-reschedule": ScheduledSession,
    "api:session-cancel": ScheduledSession,
    "api:session-status": ScheduledSession,
    "api:session-rebook": ScheduledSession,
    "api:session-checkin-outcome": ScheduledSession,
    "api:participant-withdraw": Participant,
    "api:course-end": Course,
    "api:site-sessions-export": Site,
    "api:participant-planned-vs-actual": Participant,
    "api:calendar-participant": Participant,
    "api:calendar-staff": User,
    "api:calendar-room": Room,
    "api:calendar-site": Site,
    "api:calendar-mine": "list",
    "api:schema": "list",
    "api:docs": "list",
}
ADMIN_GENERAL = {
    "admin:index": "list",
    "admin:login": "public",
    "admin:logout": "public",
    "admin:password_change": "public",
    "admin:password_change_done": "public",
    "admin:jsi18n": "public",
    "admin:autocomplete": "list",
    "admin:app_list": "list",
    "admin:view_on_site": "public",
}


def rule_for(route: Route) -> Any:
    """The route's rule, or None: a route nobody thought about."""
    if route.name in PAGE_AND_API_RULES:
        return PAGE_AND_API_RULES[route.name]
    if route.name in ADMIN_GENERAL:
        return ADMIN_GENERAL[route.name]
    if route.name.startswith("api/") and route.params == ():  # the API's JSON 404
        return "public"
    if route.name.startswith("two-factor"):  # the user's own sign-in device, nobody else's
        return "public"
    if route.name == "admin/(?P<url>.*)":  # the admin's catch-all: a 404 or a login
        return "public"
    for model in admin.site._registry:
        opts = model._meta
        if route.name.startswith(f"admin:{opts.app_label}_{opts.model_name}_"):
            return model
        if route.name.startswith(f"admin/{opts.app_label}/{opts.model_name}/"):
            return model  # the old change URL without /change/: a redirect to it
    return None


def test_every_route_has_a_rule() -> None:
    missing = [route.name for route in all_routes() if rule_for(route) is None]
    assert not missing, f"routes without an access rule in this matrix: {missing}"


# --- the world -----------------------------------------------------------------------------


@dataclass
class World:
    personas: dict[str, User | None]
    #: per persona: objects it must not see at all
    hidden: dict[str, list[Model]] = field(default_factory=dict)
    #: per persona: objects it may see but not change
    read_only: dict[str, list[Model]] = field(default_factory=dict)
    #: per persona: study codes that must not appear anywhere it looks
    codes: dict[str, set[str]] = field(default_factory=dict)


def _enrol(site: Site, code: str, dyad: Dyad, by: User) -> Course:
    return services.participant_enrol(
        site=site,
        code=code,
        protocol_slug="mapp-ptsd",
        start_date=date(2027, 3, 1),
        by=by,
        dyad=dyad,
    )


def _clinical(course: Course, *keys: str) -> list[Model]:
    """A course's participant, course, the named sessions and their bookings and deviations."""
    found: list[Model] = [course.participant, course]
    for key in keys:
        session = course.sessions.get(key=key)
        found.append(session)
        found.extend(RoomBooking.objects.filter(session=session)[:1])
        found.extend(StaffBooking.objects.filter(session=session)[:1])
        found.extend(Deviation.objects.filter(session=session)[:1])
        found.extend(Reminder.objects.filter(session=session)[:1])
        found.extend(CheckInOutcome.objects.filter(session=session)[:1])
    return found


def _setup(site: Site) -> list[Model]:
    """A site, and one of each of its set-up objects."""
    found: list[Model] = [site]
    for model in (Room, Dyad, OpeningHours, SiteClosure, SiteCalDav, CalendarPush):
        found.extend(model._default_manager.filter(site=site)[:1])
    found.extend(StaffProfile.objects.filter(sites=site, role="therapist")[:1])
    found.extend(Unavailability.objects.filter(user__staff_profile__sites=site)[:1])
    found.extend(
        User.objects.filter(staff_profile__sites=site, staff_profile__role="therapist")[:1]
    )
    return found


def _outbox_rows(course: Course, by: User) -> None:
    """A reminder of the dosing session and an outcome of a phone check-in (made directly:
    the outbox's planning is tested on its own)."""
    dosing = course.sessions.get(key="dosing-1")
    Reminder.objects.create(
        site=course.participant.site,
        session=dosing,
        participant=course.participant,
        rule_key="72h",
        message="dosing_ahead",
        channel="email",
        due_at=dosing.start,
        session_start=dosing.start,
        idempotency_key=f"{dosing.uid}/matrix/p{course.participant_id}/email",
    )
    CheckInOutcome.objects.create(
        session=course.sessions.get(key="phone-1.2"), outcome="no_answer", recorded_by=by
    )


def _caldav_rows(course: Course) -> None:
    """A site's CalDAV settings and one push of a session (made directly, after enrolment:
    publishing is tested on its own)."""
    site = course.participant.site
    SiteCalDav.objects.create(
        site=site, url=f"https://cal.example.org/{site.slug}/", username="clinic", password="x"
    )
    session = course.sessions.get(key="dosing-1")
    CalendarPush.objects.create(
        site=site, session=session, sequence=session.sequence, due_at=session.start
    )


@pytest.fixture
def world(db: Any) -> World:
    site_a, site_b = make_site("a", dyads=2), make_site("b", "Europe/London", dyads=1)
    for site in (site_a, site_b):
        SiteClosure.objects.create(site=site, date=date(2027, 12, 24), reason="holiday")
    coordinator_a = make_staff("matrix-coordinator-a", "coordinator", site_a)
    coordinator_b = make_staff("matrix-coordinator-b", "coordinator", site_b)
    admin_a = make_staff("matrix-admin-a", "admin", site_a)
    night_a = make_staff("matrix-night-a", "night_attendant", site_a)
    no_site = make_staff("matrix-no-site", "coordinator")
    dyad_1, dyad_2 = Dyad.objects.filter(site=site_a).order_by("pk")
    treated = _enrol(site_a, CODE_A_TREATED, dyad_1, coordinator_a)
    other = _enrol(site_a, CODE_A_OTHER, dyad_2, coordinator_a)
    at_b = _enrol(site_b, CODE_B, Dyad.objects.get(site=site_b), coordinator_b)
    for course in (treated, other, at_b):  # a deviation each
        session = course.sessions.get(key="phone-1.2")
        with once_over(session):
            services.session_set_status(
                session=session, status="missed", reason="no answer", by=coordinator_a
            )
        Unavailability.objects.create(
            user=course.dyad.therapist_b,  # type: ignore[union-attr]
            start=session.start,
            end=session.end,
            reason="training",
        )
    for course, by in ((treated, coordinator_a), (other, coordinator_a), (at_b, coordinator_b)):
        _outbox_rows(course, by)
    for course in (treated, at_b):  # CalDAV publishing: the settings and a push
        _caldav_rows(course)
    services.night_attendant_book(
        session=treated.sessions.get(key="dosing-1"), attendant=night_a, by=coordinator_a
    )
    baseline = treated.sessions.get(key="baseline")
    assessor_a = StaffBooking.objects.get(session=baseline, active=True).user
    for course in (treated, other, at_b):
        services.access_log_record(
            user=coordinator_a, participant=course.participant, door="page", route="matrix"
        )
    therapist_a = dyad_1.therapist_a
    for user in (coordinator_a, admin_a, therapist_a, assessor_a, night_a, no_site):
        user.is_staff = True  # the worst case: everyone may open the admin
        user.save()

    feed_b, _ = services.feed_create(
        owner=coordinator_b, scope="site", target=site_b.pk, name="matrix feed b"
    )
    feed_a, _ = services.feed_create(
        owner=coordinator_a, scope="site", target=site_a.pk, name="matrix feed a"
    )
    revoked, _ = services.feed_create(
        owner=coordinator_a, scope="mine", target=None, name="matrix revoked"
    )
    CalendarFeed.objects.filter(pk=revoked.pk).update(
        token_hash=services.feed_token_hash(REVOKED_TOKEN)
    )
    services.feed_revoke(feed=revoked, by=coordinator_a)
    b_all = _setup(site_b) + _clinical(at_b, "prep-1", "dosing-1", "phone-1.2", "baseline")
    b_all.append(feed_b)
    b_all += list(AccessLog.objects.filter(participant=at_b.participant)[:1])
    other_all = _clinical(other, "prep-1", "dosing-1", "phone-1.2", "baseline")
    other_all += list(AccessLog.objects.filter(participant=other.participant)[:1])
    treated_log: list[Model] = list(AccessLog.objects.filter(participant=treated.participant)[:1])
    a_setup = _setup(site_a)
    treated_log.append(feed_a)  # a coordinator's feed: not for the site's other roles
    everything = b_all + other_all + a_setup + _clinical(treated, "prep-1", "dosing-1")
    everything.append(feed_a)
    world = World(
        personas={
            "coordinator-a": coordinator_a,
            "admin-a": admin_a,
            "therapist-a": therapist_a,
            "assessor-a": assessor_a,
            "night-attendant-a": night_a,
            "no-site": no_site,
            "anonymous": None,
        }
    )
    world.hidden = {
        "coordinator-a": b_all,
        "admin-a": b_all,
        "therapist-a": b_all + other_all + treated_log,
        # blinded: nothing of the course but their assessment, none of the set-up
        "assessor-a": b_all
        + other_all
        + treated_log
        + [treated.participant, treated]
        + _clinical(treated, "prep-1", "dosing-1")[2:]
        + [o for o in a_setup if not isinstance(o, Site)],
        "night-attendant-a": b_all + other_all + treated_log + _clinical(treated, "prep-1")[2:],
        "no-site": everything,
        "anonymous": everything,
    }
    dosing = treated.sessions.get(key="dosing-1")
    world.read_only = {
        "coordinator-a": [],
        "admin-a": [],
        "therapist-a": a_setup,
        "assessor-a": [baseline],
        "night-attendant-a": [dosing, treated.participant],
        "no-site": [],
        "anonymous": [],
    }
    world.codes = {
        "coordinator-a": {CODE_B},
        "admin-a": {CODE_B},
        "therapist-a": {CODE_B, CODE_A_OTHER},
        "assessor-a": {CODE_B, CODE_A_OTHER},
        "night-attendant-a": {CODE_B, CODE_A_OTHER},
        "no-site": {CODE_B, CODE_A_OTHER, CODE_A_TREATED},
        "anonymous": {CODE_B, CODE_A_OTHER, CODE_A_TREATED},
    }
    return world


# --- requests ------------------------------------------------------------------------------

#: a write that would change something on every route that takes one
PAGE_BODY = {
    "action": "status",
    "status": "cancelled",
    "reason": "matrix write",
    "date": "2027-06-01",
    "time": "09:00",
    "site": "a",
    "code": "PNEW-1",
    "protocol": "mapp-ptsd",
    "start_date": "2027-06-07",
    "name": "changed by the matrix",
    "timezone": "UTC",
    "email": "matrix@example.org",
    "phone": "+1 555 0100",
    "preferred_channel": "email",
    "kind": "therapy",
    "overnight_places": "0",
    "active": "on",
    "role": "coordinator",
    "start_0": "2027-06-01",
    "start_1": "09:00",
    "end_0": "2027-06-02",
    "end_1": "09:00",
    "_save": "Save",
    "post": "yes",
}
API_BODY = {
    "start": "2027-06-01T09:00:00-04:00",
    "reason": "matrix write",
    "status": "cancelled",
    "code": "PNEW-2",
    "site": "a",
    "protocol": "mapp-ptsd",
    "start_date": "2027-06-07",
}


def fingerprint() -> str:
    """Every row of every table a write could touch (not the access log, sessions and login
    attempts, which a refused request may rightly write)."""
    skip = ("scheduling_accesslog", "django_session", "axes_")
    tables = [
        t
        for t in connection.introspection.table_names()
        if t.startswith(("scheduling_", "protocol_", "auth_", "knox_", "otp_", "django_admin"))
        and not t.startswith(skip)
    ]
    # table names come from the database itself, not from input
    select = (
        "SELECT '{t}', md5(coalesce(string_agg(x::text, ',' ORDER BY x::text), '')) FROM \"{t}\" x"
    )
    parts = " UNION ALL ".join(select.format(t=t) for t in tables)
    with connection.cursor() as cursor:
        cursor.execute(parts)
        return json.dumps(sorted(cursor.fetchall()))


def fill(route: Route, values: dict[str, str]) -> str:
    """The route's path with its parameters filled in (every group replaced, in order)."""
    path = route.pattern
    positional = iter(values.get(f"_{i}", "1") for i in range(len(route.params)))
    out, i, depth = "", 0, 0
    while i < len(path):  # replace each outermost group by its value
        char = path[i]
        if char == "\\":
            out += path[i + 1] if depth == 0 else ""
            i += 2
            continue
        if char == "(":
            if depth == 0:
                match = re.match(r"\(\?P<(\w+)>", path[i:])
                out += values.get(match.group(1), "1") if match else next(positional)
            depth += 1
        elif char == ")":
            depth -= 1
        elif depth == 0 and char not in "^$?":
            out += char
        i += 1
    return "/" + out


def model_args(route: Route, obj: Model) -> dict[str, str]:
    values = {name: str(obj.pk) for name in ("pk", "object_id", "_0")}
    history = getattr(obj, "history", None)
    if history is not None and hasattr(history, "first"):
        record = history.first()
        if record is not None:
            values["_1"] = str(record.history_id)
    if isinstance(obj, User):
        values["id"] = values["pk"] = str(obj.pk)
    return values


def ask(client: Client, method: str, path: str) -> int:
    if method == "GET":
        return client.get(path).status_code
    if path.startswith("/api/"):
        return client.post(path, API_BODY, content_type="application/json").status_code
    return client.post(path, PAGE_BODY).status_code


def login(world: World, persona: str) -> Client:
    client = Client(raise_request_exception=True)
    user = world.personas[persona]
    if user is not None:
        client.force_login(user)
    return client


PERSONAS = [
    "coordinator-a",
    "admin-a",
    "therapist-a",
    "assessor-a",
    "night-attendant-a",
    "no-site",
    "anonymous",
]


@pytest.mark.parametrize("persona", PERSONAS)
def test_no_route_reveals_or_changes_what_a_persona_must_not_reach(
    world: World, persona: str
) -> None:
    client = login(world, persona)
    leaks: list[str] = []
    for route in all_routes():
        rule = rule_for(route)
        if isinstance(rule, type) and issubclass(rule, Model) and route.params:
            _object_route(client, world, persona, route, rule, leaks)
        elif isinstance(rule, type) and issubclass(rule, Model):  # a list or an add form
            _model_list_route(client, world, persona, route, rule, leaks)
        elif rule == "protocol":
            _protocol_route(client, persona, route, leaks)
        elif rule in ("list", "protocol-list"):
            _list_route(client, world, persona, route, leaks)
        elif rule == "signed":
            _signed_route(client, route, leaks)
        elif rule == "token":
            _token_route(client, route, world, leaks)
    assert not leaks, f"{len(leaks)} leaks for {persona}:\n" + "\n".join(leaks)


def _object_route(
    client: Client, world: World, persona: str, route: Route, model: type[Model], leaks: list[str]
) -> None:
    hidden = [o for o in world.hidden[persona] if isinstance(o, model)]
    read_only = [o for o in world.read_only[persona] if isinstance(o, model)]
    for obj, may_read in [(o, False) for o in hidden[:2]] + [(o, True) for o in read_only[:1]]:
        path = fill(route, model_args(route, obj))
        if not may_read:
            status = ask(client, "GET", path)
            if status not in DENIED:
                leaks.append(f"GET {path} ({route.name}) answered {status}")
        before = fingerprint()
        status = ask(client, "POST", path)
        changed = fingerprint() != before
        if changed or (not may_read and status not in DENIED):
            leaks.append(f"POST {path} ({route.name}) answered {status}, changed={changed}")


def _signed_route(client: Client, route: Route, leaks: list[str]) -> None:
    """A webhook: without the provider's signature a POST is refused and changes nothing,
    whoever is signed in."""
    path = fill(route, {})
    before = fingerprint()
    status = client.post(path, {"From": "+12125550100", "Body": "STOP"}).status_code
    if status != 403 or fingerprint() != before:
        leaks.append(f"POST {path} ({route.name}) unsigned answered {status}")


def _token_route(client: Client, route: Route, world: World, leaks: list[str]) -> None:
    """A calendar feed: a token that is not a feed's (or a revoked feed's) is a 404 whoever
    is signed in, shows no study code, and a write changes nothing."""
    revoked = CalendarFeed.objects.filter(revoked_at__isnull=False).first()
    assert revoked is not None
    for token in ("1", "x" * 43, REVOKED_TOKEN):
        path = fill(route, {"token": token})
        response = client.get(path)
        if response.status_code != 404:
            leaks.append(f"GET {path} ({route.name}) answered {response.status_code}")
        body = response.content.decode(errors="replace")
        for code in (CODE_A_TREATED, CODE_A_OTHER, CODE_B):
            if code in body:
                leaks.append(f"GET {path} ({route.name}) shows {code}")
        before = fingerprint()
        client.post(path, PAGE_BODY)
        if fingerprint() != before:
            leaks.append(f"POST {path} ({route.name}) changed the database")


def _protocol_route(client: Client, persona: str, route: Route, leaks: list[str]) -> None:
    version = ProtocolVersion.objects.select_related("protocol").order_by("pk").first()
    assert version is not None
    path = fill(route, {"slug": version.protocol.slug, "number": str(version.version)})
    status = ask(client, "GET", path)
    # protocols carry dose plans: never for a blinded assessor, a user with no site, a visitor
    if persona in ("assessor-a", "no-site", "anonymous") and status not in DENIED:
        leaks.append(f"GET {path} ({route.name}) answered {status}")
    before = fingerprint()
    ask(client, "POST", path)
    if fingerprint() != before:
        leaks.append(f"POST {path} ({route.name}) changed the database")


def _list_route(client: Client, world: World, persona: str, route: Route, leaks: list[str]) -> None:
    if route.params and not route.name.endswith("app_list"):
        return
    paths = [fill(route, {"app_label": label}) for label in ("scheduling", "protocol", "auth")]
    if route.name == "admin:autocomplete":
        paths = [
            f"/admin/autocomplete/?app_label=scheduling&model_name={m}&field_name={f}&term="
            for m, f in (("staffprofile", "user"), ("dyad", "therapist_a"), ("room", "site"))
        ]
    for path in dict.fromkeys(paths) if route.params else [paths[0]]:
        response = client.get(path)
        if response.status_code >= 500:
            leaks.append(f"GET {path} ({route.name}) answered {response.status_code}")
        body = response.content.decode(errors="replace")
        for code in world.codes[persona]:
            if code in body:
                leaks.append(f"GET {path} ({route.name}) shows {code}")
        anonymous_200 = persona == "anonymous" and response.status_code == 200
        form = 'name="password"' in body
        if anonymous_200 and "api" not in path and route.name != "landing" and not form:
            leaks.append(f"GET {path} ({route.name}) answered 200 without a login")
    before = fingerprint()
    status = ask(client, "POST", paths[0])
    if persona not in ("coordinator-a", "admin-a") and fingerprint() != before:
        leaks.append(f"POST {paths[0]} ({route.name}) answered {status} and changed the database")


def _model_list_route(
    client: Client, world: World, persona: str, route: Route, model: type[Model], leaks: list[str]
) -> None:
    """An admin list or add form: no hidden object is listed, and an action on hidden objects
    (or an add that names another site) changes nothing."""
    path = fill(route, {})
    response = client.get(path)
    body = response.content.decode(errors="replace")
    if response.status_code >= 500:
        leaks.append(f"GET {path} ({route.name}) answered {response.status_code}")
    for obj in world.hidden[persona]:
        if isinstance(obj, model) and f"/{obj.pk}/change/" in body:
            leaks.append(f"GET {path} ({route.name}) lists {model.__name__} {obj.pk}")
    for code in world.codes[persona]:
        if code in body:
            leaks.append(f"GET {path} ({route.name}) shows {code}")
    hidden = [str(o.pk) for o in world.hidden[persona] if isinstance(o, model)]
    site_b = next((o for o in world.hidden[persona] if isinstance(o, Site)), None)
    body_ = {
        **PAGE_BODY,
        "action": "delete_selected",
        "_selected_action": hidden,
        "site": str(site_b.pk) if site_b else "",
        "sites": str(site_b.pk) if site_b else "",
    }
    before = fingerprint()
    status = client.post(path, body_).status_code
    if fingerprint() != before:
        leaks.append(f"POST {path} ({route.name}) answered {status} and changed the database")


def test_the_matrix_covers_every_model_the_policy_names() -> None:
    """Each kind of object in the policy has an object in the world to be refused."""
    from scheduling.access import RULES

    named = set(RULES)
    covered = {
        Site,
        Room,
        OpeningHours,
        SiteClosure,
        Dyad,
        StaffProfile,
        User,
        Unavailability,
        Participant,
        Course,
        ScheduledSession,
        Deviation,
        RoomBooking,
        StaffBooking,
        AccessLog,
        Reminder,
        CheckInOutcome,
        SiteCalDav,
        CalendarPush,
        CalendarFeed,
        Protocol,
        ProtocolVersion,
        SessionTemplate,
    }
    assert named <= covered, named - covered
    assert apps.get_model("scheduling", "AccessLog") is AccessLog


def test_the_readme_prints_the_policy_as_it_is() -> None:
    from pathlib import Path

    from scheduling.access import rules_markdown

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert rules_markdown() in readme
