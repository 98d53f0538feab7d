"""Who may see and do what: the one access policy, asked by every door (pages, the REST API,
the admin with its history views, actions, autocomplete and inlines, exports and feeds).

The policy is data: ``RULES`` maps an object kind and an action to the scope each role has.
A scope says *which* objects of that kind the role reaches:

- ``SITE``: every object of the sites the user works at;
- ``TREATED``: a therapist's participants (their dyad's courses, or a session they are booked
  on) and everything of those courses;
- ``NIGHTS``: a night attendant's nights: the overnight sessions they are booked on and those
  sessions' participants;
- ``ASSESSMENTS``: a remote assessor's assessments: the assessment sessions booked to them, and
  nothing else of the course (blinded: no arm, no doses, no dosing-day records);
- ``BOOKED``: the sessions the user is booked on (a phone check-in's outcome is recorded by the
  therapist who makes the call);
- ``OWN``: the user's own staff record and availability;
- ``NONE``: nothing.

Every scope is also limited to the user's sites, so another site's object does not exist for
the user (a 404 everywhere, and absent from lists). A user without a site reaches nothing.
Superusers are support accounts outside the clinic's roles: they reach every site.

Use ``scope(queryset, user, action)`` to narrow a read or a write, ``can(user, action, obj)``
for one object and ``allows(user, action, model)`` to ask whether a role has the action at all
(menus, add buttons, whole pages).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, TypeVar

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User
from django.db.models import Model, Q, QuerySet

from protocol.models import Protocol, ProtocolVersion, SessionTemplate
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

M = TypeVar("M", bound=Model)
AnyUser = AbstractBaseUser | AnonymousUser
Role = StaffProfile.Role


class Scope(StrEnum):
    SITE = "everything at their sites"
    TREATED = "the participants they treat"
    NIGHTS = "the nights they work"
    ASSESSMENTS = "the assessments booked to them"
    BOOKED = "the sessions they are booked on"
    OWN = "their own record"
    NONE = "nothing"


class Action(StrEnum):
    VIEW = "view"
    CHANGE = "change"  # edit (set-up in the admin; contact details of a participant)
    ADD = "add"
    ENROL = "enrol"
    RESCHEDULE = "reschedule"
    SET_STATUS = "set status"  # confirm, complete, cancel, mark missed
    END = "end"  # withdraw a participant, end a course early
    IMPORT = "import"  # new protocol versions: import, draft, activate, retire
    RECORD_CHECKIN = "record check-in"  # the outcome of a phone check-in
    EXPORT = "export"  # CSV files: a site's sessions, a participant's planned versus actual


# one letter per scope keeps the table below readable as a table
S, T, N, A, B, OWN, X = (
    Scope.SITE,
    Scope.TREATED,
    Scope.NIGHTS,
    Scope.ASSESSMENTS,
    Scope.BOOKED,
    Scope.OWN,
    Scope.NONE,
)
#: the column order of every rule below
ROLES = (Role.ADMIN, Role.COORDINATOR, Role.THERAPIST, Role.ASSESSOR, Role.NIGHT_ATTENDANT)


def _row(*scopes: Scope) -> dict[str, Scope]:
    return dict(zip(ROLES, scopes, strict=True))


_SETUP_VIEW = _row(S, S, S, X, S)  # a site's rooms, hours, closures, dyads
_SETUP_CHANGE = _row(S, S, X, X, X)

#: object kind -> action -> role -> scope. The README prints this table.
RULES: dict[type[Model], dict[Action, dict[str, Scope]]] = {
    # export: the site's sessions as CSV, for those who run the site
    Site: {
        Action.VIEW: _row(S, S, S, S, S),
        Action.CHANGE: _SETUP_CHANGE,
        Action.EXPORT: _row(S, S, X, X, X),
    },
    Room: {Action.VIEW: _SETUP_VIEW, Action.CHANGE: _SETUP_CHANGE, Action.ADD: _SETUP_CHANGE},
    OpeningHours: {
        Action.VIEW: _SETUP_VIEW,
        Action.CHANGE: _SETUP_CHANGE,
        Action.ADD: _SETUP_CHANGE,
    },
    SiteClosure: {
        Action.VIEW: _SETUP_VIEW,
        Action.CHANGE: _SETUP_CHANGE,
        Action.ADD: _SETUP_CHANGE,
    },
    Dyad: {Action.VIEW: _SETUP_VIEW, Action.CHANGE: _SETUP_CHANGE, Action.ADD: _SETUP_CHANGE},
    StaffProfile: {
        Action.VIEW: _row(S, S, S, OWN, S),
        Action.CHANGE: _SETUP_CHANGE,
        Action.ADD: _SETUP_CHANGE,
    },
    User: {Action.VIEW: _row(S, S, S, OWN, S)},  # people: only superusers edit accounts
    Unavailability: {
        Action.VIEW: _row(S, S, OWN, OWN, OWN),
        Action.CHANGE: _SETUP_CHANGE,
        Action.ADD: _SETUP_CHANGE,
    },
    Participant: {
        Action.VIEW: _row(S, S, T, X, N),
        Action.CHANGE: _row(S, S, X, X, X),  # contact details
        Action.ENROL: _row(S, S, X, X, X),
        Action.END: _row(S, S, X, X, X),
        # planned versus actual lists every session of the course: for those who see the
        # whole course (not a night attendant, who sees only their nights)
        Action.EXPORT: _row(S, S, T, X, X),
    },
    Course: {Action.VIEW: _row(S, S, T, X, N), Action.END: _row(S, S, X, X, X)},
    ScheduledSession: {
        Action.VIEW: _row(S, S, T, A, N),
        Action.RESCHEDULE: _row(S, S, T, X, X),
        Action.SET_STATUS: _row(S, S, T, X, X),
        Action.RECORD_CHECKIN: _row(S, S, B, X, X),
    },
    Deviation: {Action.VIEW: _row(S, S, T, A, N)},
    RoomBooking: {Action.VIEW: _row(S, S, T, X, N)},
    StaffBooking: {Action.VIEW: _row(S, S, T, A, N)},
    # dose plans and the arm: never for a blinded assessor
    Protocol: {Action.VIEW: _row(S, S, S, X, S), Action.IMPORT: _row(S, S, X, X, X)},
    ProtocolVersion: {Action.VIEW: _row(S, S, S, X, S), Action.IMPORT: _row(S, S, X, X, X)},
    SessionTemplate: {Action.VIEW: _row(S, S, S, X, S), Action.IMPORT: _row(S, S, X, X, X)},
    # who read which participant's record: for the site's administrators (compliance)
    AccessLog: {Action.VIEW: _row(S, X, X, X, X)},
    # the outbox: what was planned, sent, failed or skipped, and why; "change" is sending a
    # failed one again (the admin's action), never editing a row
    Reminder: {Action.VIEW: _row(S, S, T, X, N), Action.CHANGE: _row(S, S, X, X, X)},
    CheckInOutcome: {Action.VIEW: _row(S, S, T, X, X)},
    # a site's CalDAV collection and its account: for those who set the site up
    SiteCalDav: {
        Action.VIEW: _SETUP_CHANGE,
        Action.CHANGE: _SETUP_CHANGE,
        Action.ADD: _SETUP_CHANGE,
    },
    CalendarPush: {Action.VIEW: _SETUP_CHANGE},
    # live calendar feeds: everyone subscribes to what they may see; coordinators see and
    # revoke the feeds of the people of their sites (someone leaves, a phone is lost)
    CalendarFeed: {
        Action.VIEW: _row(S, S, OWN, OWN, OWN),
        Action.ADD: _row(S, S, OWN, OWN, OWN),
        Action.CHANGE: _row(S, S, OWN, OWN, OWN),  # revoke
    },
}

#: how each object kind reaches its site (None: shared by every site, like protocols)
SITE_PATHS: dict[type[Model], str | None] = {
    Site: "pk",
    Room: "site",
    OpeningHours: "site",
    SiteClosure: "site",
    Dyad: "site",
    StaffProfile: "sites",
    User: "staff_profile__sites",
    Unavailability: "user__staff_profile__sites",
    Participant: "site",
    Course: "participant__site",
    ScheduledSession: "course__participant__site",
    Deviation: "session__course__participant__site",
    RoomBooking: "session__course__participant__site",
    StaffBooking: "session__course__participant__site",
    AccessLog: "participant__site",
    Reminder: "site",
    CheckInOutcome: "session__course__participant__site",
    SiteCalDav: "site",
    CalendarPush: "site",
    CalendarFeed: "owner__staff_profile__sites",  # the sites its owner works at
    Protocol: None,
    ProtocolVersion: None,
    SessionTemplate: None,
}

#: how a clinical object reaches its course ("" is the course itself)
COURSE_PATHS: dict[type[Model], str] = {
    Course: "",
    ScheduledSession: "course",
    Deviation: "session__course",
    RoomBooking: "session__course",
    StaffBooking: "session__course",
    Reminder: "session__course",
    CheckInOutcome: "session__course",
}
#: how a clinical object reaches its session ("" is the session itself)
SESSION_PATHS: dict[type[Model], str] = {
    ScheduledSession: "",
    Deviation: "session",
    RoomBooking: "session",
    StaffBooking: "session",
    Reminder: "session",
    CheckInOutcome: "session",
}
#: how a personal object reaches its person
OWNER_PATHS: dict[type[Model], str] = {
    User: "pk",
    StaffProfile: "user_id",
    Unavailability: "user_id",
    CalendarFeed: "owner_id",
}

_UNREAD: Any = object()  # not read yet (None is "no staff profile")


# --- who the user is -------------------------------------------------------------------------


def user_site_ids(user: AnyUser) -> set[int] | None:
    """The sites a user works at; None means every site (superusers). Read once per user
    object: a request asks several times, and each request loads its user afresh."""
    if not user.is_authenticated or not getattr(user, "is_active", False):
        return set()
    if getattr(user, "is_superuser", False):
        return None
    sites: set[int] | None = getattr(user, "_access_site_ids", None)
    if sites is None:
        _read_staff_profile(user)
        sites = getattr(user, "_access_site_ids", set())
    return sites


def _read_staff_profile(user: AnyUser) -> None:
    """The user's role and sites in one query, kept on the user object (request.user is a
    lazy proxy: plain attributes pass through it)."""
    rows = list(StaffProfile.objects.filter(user_id=_pk(user)).values_list("role", "sites"))
    setattr(user, "_access_role", rows[0][0] if rows else None)  # noqa: B010
    sites = {site for _, site in rows if site is not None}
    setattr(user, "_access_site_ids", sites)  # noqa: B010


def role_of(user: AnyUser) -> str | None:
    """The user's staff role (None without a staff profile), read once per user object."""
    if not user.is_authenticated:
        return None
    role: str | None = getattr(user, "_access_role", _UNREAD)
    if role is _UNREAD:
        _read_staff_profile(user)
        role = getattr(user, "_access_role", None)
    return role


def scope_of(user: AnyUser, action: str, model: type[Model]) -> Scope | None:
    """The scope the user's role has for ``action`` on ``model``; None means everything
    (superusers). A kind or an action without a rule is NONE: nothing is open by default."""
    if not user.is_authenticated or not getattr(user, "is_active", False):
        return Scope.NONE
    if getattr(user, "is_superuser", False):
        return None
    role = role_of(user)
    if role is None or not user_site_ids(user):
        return Scope.NONE
    return RULES.get(model, {}).get(Action(action), {}).get(role, Scope.NONE)


def allows(user: AnyUser, action: str, model: type[Model]) -> bool:
    """Whether the user's role may ``action`` some object of ``model`` (a page, a menu entry,
    an add button); which objects is ``scope``'s answer."""
    return scope_of(user, action, model) != Scope.NONE


def scope(queryset: QuerySet[M], user: AnyUser, action: str = Action.VIEW) -> QuerySet[M]:
    """``queryset`` narrowed to the objects the user may ``action``."""
    model = queryset.model
    found = scope_of(user, action, model)
    if found is None:
        return queryset
    if found == Scope.NONE:
        return queryset.none()
    sites = user_site_ids(user)
    assert sites is not None  # superusers returned above
    condition = _site_condition(model, sites)
    if _multi_valued(model):  # a person at several sites: ids, not a DISTINCT of whole rows
        condition = Q(pk__in=model._default_manager.filter(condition).values("pk"))
    narrowed = queryset.filter(condition)
    if found != Scope.SITE:
        narrowed = narrowed.filter(_role_condition(model, found, _pk(user)))
    return narrowed


def can(user: AnyUser, action: str, obj: Model) -> bool:
    """Whether the user may ``action`` this one object."""
    model = type(obj)
    found = scope_of(user, action, model)
    if found is None:
        return True
    if found == Scope.NONE or obj.pk is None:
        return False
    return scope(model._default_manager.filter(pk=obj.pk), user, action).exists()


def get(queryset: QuerySet[M], user: AnyUser, action: str = Action.VIEW, **lookup: Any) -> M:
    """One object the user may ``action``; ``DoesNotExist`` (a 404) for anything else, so that
    another site's object and a forbidden one look the same."""
    return scope(queryset, user, action).get(**lookup)


# --- conditions ----------------------------------------------------------------------------


def _site_condition(model: type[Model], sites: set[int]) -> Q:
    path = SITE_PATHS.get(model, _MISSING)
    if path is _MISSING:
        raise KeyError(f"{model.__name__} has no site path in scheduling.access.SITE_PATHS")
    if path is None:  # shared by every site: a user at some site reaches it
        return Q()
    return Q(**{f"{path}__in": sites})


_MISSING: Any = object()


def _multi_valued(model: type[Model]) -> bool:
    path = SITE_PATHS.get(model) or ""
    return "sites" in path


def _role_condition(model: type[Model], found: Scope, uid: int) -> Q:
    if found == Scope.OWN:
        owner = OWNER_PATHS.get(model)
        return Q(pk__in=[]) if owner is None else Q(**{owner: uid})
    if found == Scope.TREATED:
        return _course_condition(model, treated_courses(uid))
    if found == Scope.NIGHTS:
        if model in SESSION_PATHS:
            return _session_condition(model, night_sessions(uid))
        return _course_condition(model, Course.objects.filter(sessions__in=night_sessions(uid)))
    if found == Scope.ASSESSMENTS and model in SESSION_PATHS:
        return _session_condition(model, assessment_sessions(uid))
    if found == Scope.BOOKED and model in SESSION_PATHS:
        return _session_condition(model, booked_sessions(uid))
    return Q(pk__in=[])  # this scope does not reach this kind of object


def _session_condition(model: type[Model], sessions: QuerySet[Any]) -> Q:
    path = SESSION_PATHS[model]
    return Q(pk__in=sessions) if path == "" else Q(**{f"{path}__in": sessions})


def _course_condition(model: type[Model], courses: QuerySet[Course]) -> Q:
    """Objects of ``courses``: a participant as the participant or the partner of a couple."""
    if model is Participant:
        return Q(pk__in=courses.values("participant")) | Q(pk__in=courses.values("partner"))
    path = COURSE_PATHS.get(model)
    if path is None:
        return Q(pk__in=[])
    ids = courses.values("pk")
    return Q(pk__in=ids) if path == "" else Q(**{f"{path}__in": ids})


def treated_courses(uid: int) -> QuerySet[Course]:
    """A therapist's courses: their dyad's, or one with a session they are booked on."""
    booked = StaffBooking.objects.filter(user_id=uid, active=True).values("session__course")
    return Course.objects.filter(
        Q(dyad__therapist_a_id=uid) | Q(dyad__therapist_b_id=uid) | Q(pk__in=booked)
    )


def night_sessions(uid: int) -> QuerySet[Any]:
    """Ids of the overnight sessions a night attendant is booked on."""
    booked = StaffBooking.objects.filter(user_id=uid, active=True).values("session")
    return ScheduledSession.objects.filter(overnight=True, pk__in=booked).values("pk")


def assessment_sessions(uid: int) -> QuerySet[Any]:
    """Ids of the assessments booked to a remote assessor."""
    booked = StaffBooking.objects.filter(user_id=uid, active=True).values("session")
    return ScheduledSession.objects.filter(kind="assessment", pk__in=booked).values("pk")


def booked_sessions(uid: int) -> QuerySet[Any]:
    """Ids of the sessions a person is booked on."""
    return StaffBooking.objects.filter(user_id=uid, active=True).values("session")


#: the README's words for each scope
SHORT = {
    Scope.SITE: "site",
    Scope.TREATED: "treated",
    Scope.NIGHTS: "nights",
    Scope.ASSESSMENTS: "assessments",
    Scope.BOOKED: "booked",
    Scope.OWN: "own",
    Scope.NONE: "—",
}


def rules_markdown() -> str:
    """The policy as the README's table (a test keeps the README equal to it)."""
    lines = [
        "| object | action | admin | coordinator | therapist | remote assessor | night attendant |",
        "|---|---|---|---|---|---|---|",
    ]
    for model, actions in RULES.items():
        for action, scopes in actions.items():
            cells = " | ".join(SHORT[scopes[role]] for role in ROLES)
            lines.append(f"| {model._meta.verbose_name} | {action.value} | {cells} |")
    return "\n".join(lines)


def _pk(user: AnyUser) -> int:
    return int(str(user.pk)) if user.pk is not None else -1  # anonymous: matches nobody
