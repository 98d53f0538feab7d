"""Protocols as plain data: the pure model the planner reads, the JSON document format, and the
rules a protocol must satisfy.

No database and no clock here. The ORM models (protocol.models) store the same fields; services
convert between the two so the planner, the importer and the admin share one set of rules.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import time
from decimal import Decimal
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

DOCUMENT_FORMAT = "protocol-document/1"
SCHEMA_PATH = Path(__file__).with_name("protocol-document.schema.json")


class Kind(StrEnum):
    SCREENING = "screening"
    PREPARATORY = "preparatory"
    ASSESSMENT = "assessment"
    DOSING = "dosing"
    INTEGRATION = "integration"
    PHONE_CHECKIN = "phone_checkin"
    FOLLOW_UP = "follow_up"
    OTHER = "other"


#: The sessions that make up "therapy" when measuring a course's span (prep-1 to the last
#: integration session), as in "~42 h of therapy over 12-18 weeks".
THERAPY_KINDS = frozenset({Kind.PREPARATORY, Kind.DOSING, Kind.INTEGRATION})


class Staffing(StrEnum):
    THERAPIST_DYAD = "therapist_dyad"
    ONE_THERAPIST = "one_therapist"
    REMOTE_ASSESSOR = "remote_assessor"
    NONE = "none"


class RoomNeed(StrEnum):
    NONE = "none"
    THERAPY_ROOM = "therapy_room"
    DOSING_ROOM_OVERNIGHT = "dosing_room_overnight"


class Status(StrEnum):
    DRAFT = "draft"
    ACTIVE = "active"
    RETIRED = "retired"


class Supplemental(StrEnum):
    GIVEN_BY_DEFAULT = "given_by_default"
    OPTIONAL = "optional"
    NONE = "none"


class Audience(StrEnum):
    """Who a reminder goes to."""

    PARTICIPANT = "participant"  # a couple's joint session: both partners
    DYAD = "dyad"  # the therapists booked on the session
    ASSESSOR = "assessor"  # the remote assessor booked on the session
    NIGHT_ATTENDANT = "night_attendant"  # the night attendant booked on the session
    COORDINATORS = "coordinators"  # every coordinator of the site


#: Staff hear by email only: the product keeps no staff phone numbers.
STAFF_AUDIENCES = frozenset(
    {Audience.DYAD, Audience.ASSESSOR, Audience.NIGHT_ATTENDANT, Audience.COORDINATORS}
)


class Channel(StrEnum):
    EMAIL = "email"
    SMS = "sms"


#: The message templates a rule may name (templates/reminders/<name>.txt, .html, .sms.txt).
#: Fixed in code: a protocol document chooses among reviewed, discreet texts, it cannot carry
#: its own wording.
MESSAGES = {
    "upcoming": "a visit is coming up (date, time, place, how to prepare)",
    "dosing_ahead": "a long day with an overnight stay is coming up: arrange the ride home",
    "dosing_evening": "the evening before the long day: fasting, what to bring, the ride home",
    "checkin_call": "staff: a phone check-in is due",
}


@dataclass(frozen=True, slots=True)
class ReminderRule:
    """When a reminder of a session goes out, to whom, how, and with which message.

    Exactly one of ``hours_before``, ``minutes_before`` (before the start) and
    ``day_before_at`` (a local time on the day before the session) is set; the document keeps
    the form it was written in, so an export is the import, exactly.
    """

    key: str
    audience: tuple[Audience, ...]
    channels: tuple[Channel, ...]
    message: str
    hours_before: int | None = None
    minutes_before: int | None = None
    day_before_at: time | None = None

    @property
    def staff_only(self) -> bool:
        return all(a in STAFF_AUDIENCES for a in self.audience)

    def describe(self) -> str:
        """The rule in words: "72 h before, to the participant, by email or SMS"."""
        if self.day_before_at is not None:
            when = f"the day before at {self.day_before_at:%H:%M}"
        elif self.minutes_before is not None:
            when = f"{self.minutes_before} min before"
        else:
            when = f"{self.hours_before} h before"
        who = " and ".join(_AUDIENCE_WORDS[a] for a in self.audience)
        how = " or ".join("SMS" if c == Channel.SMS else c.value for c in self.channels)
        return f"{when}, to {who}, by {how}"


_AUDIENCE_WORDS = {
    Audience.PARTICIPANT: "the participant",
    Audience.DYAD: "the therapists",
    Audience.ASSESSOR: "the assessor",
    Audience.NIGHT_ATTENDANT: "the night attendant",
    Audience.COORDINATORS: "the coordinators",
}


@dataclass(frozen=True, slots=True)
class DosePlan:
    initial_mg: Decimal
    supplemental_mg: Decimal | None
    #: minutes after the initial dose: [earliest, latest] for the supplemental dose
    supplemental_window_minutes: tuple[int, int] | None
    supplemental: Supplemental


@dataclass(frozen=True, slots=True)
class Timing:
    """When a session happens relative to its anchor (``None``: the course start).

    ``next_morning`` is the session after an overnight stay: the day after its anchor, fixed.
    Otherwise the session aims at ``target_days`` after the anchor and may go anywhere in
    [``earliest_days``, ``latest_days``].
    """

    anchor: str | None
    target_days: int
    earliest_days: int
    latest_days: int
    next_morning: bool = False

    @classmethod
    def morning_after(cls, anchor: str) -> Timing:
        return cls(anchor=anchor, target_days=1, earliest_days=1, latest_days=1, next_morning=True)


@dataclass(frozen=True, slots=True)
class SessionSpec:
    key: str
    title: str
    kind: Kind
    duration_minutes: int
    overnight: bool
    start_time: time
    open_days_apply: bool
    staffing: Staffing
    room: RoomNeed
    timing: Timing
    joint: bool = False
    preparation: str = ""
    repeat_count: int = 1
    repeat_interval_days: int = 1
    dose_plan: DosePlan | None = None
    reminders: tuple[ReminderRule, ...] = ()

    def occurrence_key(self, occurrence: int) -> str:
        """Keys of repeated sessions: ``phone-1.1`` ... ``phone-1.5`` (a dot never appears in a
        template key, so these cannot collide with one)."""
        return self.key if self.repeat_count == 1 else f"{self.key}.{occurrence}"


@dataclass(frozen=True)
class ProtocolSpec:
    slug: str
    name: str
    version: int
    status: Status
    investigational: bool
    couples: bool
    description: str
    span_min_weeks: int
    span_max_weeks: int
    sessions: tuple[SessionSpec, ...]
    #: a phone check-in with no outcome this many hours after its time escalates
    checkin_escalation_hours: int = 4
    _order: tuple[SessionSpec, ...] | None = field(
        default=None, init=False, repr=False, compare=False, hash=False
    )

    def session(self, key: str) -> SessionSpec:
        for session in self.sessions:
            if session.key == key:
                return session
        raise KeyError(key)

    def placement_order(self) -> tuple[SessionSpec, ...]:
        """Sessions with every anchor before its dependents; ties keep document order.

        Computed once per spec (the planner calls it for every course). Raises
        ProtocolInvalid on unknown anchors or cycles.
        """
        if self._order is None:
            object.__setattr__(self, "_order", _topological(self.sessions))
        assert self._order is not None
        return self._order


class ProtocolInvalid(ValueError):
    """A protocol that breaks the rules; ``problems`` holds one readable message per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


# --- rules ---------------------------------------------------------------------------------


def _topological(sessions: tuple[SessionSpec, ...]) -> tuple[SessionSpec, ...]:
    by_key = {s.key: s for s in sessions}
    problems = [
        f"{s.key}: anchor '{s.timing.anchor}' is not a session of this protocol"
        for s in sessions
        if s.timing.anchor is not None and s.timing.anchor not in by_key
    ]
    if problems:
        raise ProtocolInvalid(problems)
    placed: dict[str, SessionSpec] = {}
    remaining = list(sessions)
    while remaining:
        ready = [s for s in remaining if s.timing.anchor is None or s.timing.anchor in placed]
        if not ready:
            raise ProtocolInvalid([f"anchor cycle: {_describe_cycle(remaining)}"])
        for s in ready:
            placed[s.key] = s
        remaining = [s for s in remaining if s.key not in placed]
    return tuple(placed.values())


def _describe_cycle(stuck: list[SessionSpec]) -> str:
    # Every stuck session's anchor is stuck too, so following anchors must come back round.
    anchors = {s.key: s.timing.anchor for s in stuck}
    path = [stuck[0].key]
    while (following := anchors[path[-1]]) not in path:
        assert following is not None
        path.append(following)
    return " -> ".join([*path[path.index(following) :], following])


def target_offsets(spec: ProtocolSpec) -> dict[str, int]:
    """Day offset from the course start of every session occurrence, if all go on target."""
    offsets: dict[str, int] = {}
    base: dict[str, int] = {}
    for s in spec.placement_order():
        anchor_day = 0 if s.timing.anchor is None else base[s.timing.anchor]
        base[s.key] = anchor_day + s.timing.target_days
        for i in range(s.repeat_count):
            offsets[s.occurrence_key(i + 1)] = base[s.key] + i * s.repeat_interval_days
    return offsets


def latest_offset(spec: ProtocolSpec) -> int:
    """The last day after the course start that any session could fall on, every window taken
    at its latest: how far ahead a course can reach (for loading bookings)."""
    base: dict[str, int] = {}
    last = 0
    for s in spec.placement_order():
        anchor_day = 0 if s.timing.anchor is None else base[s.timing.anchor]
        base[s.key] = anchor_day + s.timing.latest_days
        last = max(last, base[s.key] + (s.repeat_count - 1) * s.repeat_interval_days)
    return last


def therapy_span_days(spec: ProtocolSpec, offsets: dict[str, int]) -> int:
    days = [
        offsets[s.occurrence_key(i + 1)]
        for s in spec.sessions
        if s.kind in THERAPY_KINDS
        for i in range(s.repeat_count)
    ]
    return max(days) - min(days) if days else 0


def validate(spec: ProtocolSpec) -> list[str]:
    """Every rule the protocol breaks, one message each; empty when it is valid."""
    problems: list[str] = []
    seen: dict[str, int] = {}
    for position, s in enumerate(spec.sessions, start=1):
        if s.key in seen:
            problems.append(
                f"duplicate session key '{s.key}' (sessions {seen[s.key]} and {position})"
            )
        seen.setdefault(s.key, position)
        problems.extend(_session_problems(spec, s))
    if spec.span_min_weeks > spec.span_max_weeks:
        problems.append(
            f"therapy span bounds are reversed: minimum {spec.span_min_weeks} weeks "
            f"is more than maximum {spec.span_max_weeks} weeks"
        )
    if not any(s.timing.anchor is None for s in spec.sessions):
        problems.append("no session is anchored on the course start")
    try:
        _topological(spec.sessions)
    except ProtocolInvalid as exc:  # cycles; unknown anchors are reported per session above
        problems.extend(p for p in exc.problems if p not in problems)
    if problems:
        return problems
    offsets = target_offsets(spec)
    span = therapy_span_days(spec, offsets)
    if not spec.span_min_weeks * 7 <= span <= spec.span_max_weeks * 7:
        problems.append(
            f"therapy span at the target dates is {span / 7:.1f} weeks ({span} days), outside "
            f"the protocol's bounds of {spec.span_min_weeks}-{spec.span_max_weeks} weeks"
        )
    return problems


def _session_problems(spec: ProtocolSpec, s: SessionSpec) -> list[str]:
    problems: list[str] = []
    t = s.timing
    if t.anchor == s.key:
        problems.append(f"{s.key}: anchored on itself")
    if t.next_morning and t.anchor is None:
        problems.append(f"{s.key}: 'next morning' needs an anchor session with an overnight stay")
    elif t.next_morning:
        anchor = _find(spec, t.anchor)
        if anchor is not None and not anchor.overnight:
            problems.append(
                f"{s.key}: 'next morning' needs an anchor with an overnight stay, "
                f"and '{anchor.key}' has none"
            )
    elif t.earliest_days > t.latest_days:
        problems.append(
            f"{s.key}: window [{t.earliest_days:+d}, {t.latest_days:+d}] days ends before it starts"
        )
    elif not t.earliest_days <= t.target_days <= t.latest_days:
        problems.append(
            f"{s.key}: target {t.target_days:+d} days is outside its window "
            f"[{t.earliest_days:+d}, {t.latest_days:+d}]"
        )
    anchor = _find(spec, t.anchor)
    if t.anchor is not None and anchor is None:
        problems.append(f"{s.key}: anchor '{t.anchor}' is not a session of this protocol")
    if anchor is not None and anchor.repeat_count > 1:
        problems.append(f"{s.key}: cannot anchor on '{anchor.key}', which repeats")
    if s.kind == Kind.DOSING and s.dose_plan is None:
        problems.append(f"{s.key}: a dosing session needs a dose plan")
    if s.kind != Kind.DOSING and s.dose_plan is not None:
        problems.append(f"{s.key}: only dosing sessions have a dose plan")
    if s.dose_plan is not None:
        problems.extend(_dose_problems(s.key, s.dose_plan))
    if s.room == RoomNeed.DOSING_ROOM_OVERNIGHT and not s.overnight:
        problems.append(f"{s.key}: a dosing room with overnight stay needs 'overnight' set")
    if s.joint and not spec.couples:
        problems.append(f"{s.key}: 'joint' sessions exist only in couples protocols")
    problems.extend(_reminder_problems(s))
    return problems


#: which staffing books which staff audience on a session
_AUDIENCE_NEEDS = {
    Audience.DYAD: {Staffing.THERAPIST_DYAD, Staffing.ONE_THERAPIST},
    Audience.ASSESSOR: {Staffing.REMOTE_ASSESSOR},
}


def _reminder_problems(s: SessionSpec) -> list[str]:
    problems: list[str] = []
    seen: set[str] = set()
    for rule in s.reminders:
        where = f"{s.key}: reminder '{rule.key}'"
        if rule.key in seen:
            problems.append(f"{where} appears twice; give each reminder its own key")
        seen.add(rule.key)
        if len(set(rule.audience)) != len(rule.audience):
            problems.append(f"{where} names an audience twice")
        if len(set(rule.channels)) != len(rule.channels):
            problems.append(f"{where} names a channel twice")
        if rule.message not in MESSAGES:
            problems.append(
                f"{where}: unknown message '{rule.message}' (known: {', '.join(sorted(MESSAGES))})"
            )
        staff = [a.value for a in rule.audience if a in STAFF_AUDIENCES]
        if staff and Channel.SMS in rule.channels:
            problems.append(
                f"{where}: staff ({', '.join(staff)}) are reminded by email only; "
                "make a separate rule for them or drop sms"
            )
        for audience, staffings in _AUDIENCE_NEEDS.items():
            if audience in rule.audience and s.staffing not in staffings:
                problems.append(
                    f"{where}: the session's staffing '{s.staffing.value}' books no "
                    f"{audience.value.replace('_', ' ')}"
                )
        if Audience.NIGHT_ATTENDANT in rule.audience and not s.overnight:
            problems.append(f"{where}: only a session with an overnight stay has a night attendant")
    return problems


def _dose_problems(key: str, plan: DosePlan) -> list[str]:
    problems: list[str] = []
    has_dose = plan.supplemental_mg is not None
    if plan.supplemental == Supplemental.NONE and has_dose:
        problems.append(f"{key}: a supplemental dose is set but the plan says there is none")
    if plan.supplemental != Supplemental.NONE:
        if not has_dose:
            problems.append(f"{key}: the supplemental dose in mg is missing")
        if plan.supplemental_window_minutes is None:
            problems.append(f"{key}: the supplemental dose needs a window in minutes")
    window = plan.supplemental_window_minutes
    if window is not None and window[0] > window[1]:
        problems.append(
            f"{key}: supplemental window {window[0]}-{window[1]} minutes ends before it starts"
        )
    return problems


def _find(spec: ProtocolSpec, key: str | None) -> SessionSpec | None:
    if key is None:
        return None
    for s in spec.sessions:
        if s.key == key:
            return s
    return None


# --- the JSON document ---------------------------------------------------------------------


@cache
def _document_validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA_PATH.read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


@cache
def _rules_validator() -> jsonschema.protocols.Validator:
    defs = json.loads(SCHEMA_PATH.read_text())["$defs"]
    schema = {"type": "array", "maxItems": 20, "items": {"$ref": "#/$defs/reminder"}, "$defs": defs}
    return jsonschema.validators.validator_for(schema)(schema)


def rules_problems(rules: Any) -> list[str]:
    """What is wrong with one session's reminder rules in document form (the admin's field)."""
    errors = sorted(_rules_validator().iter_errors(rules), key=lambda e: list(map(str, e.path)))
    return [message for error in errors for message in _schema_messages(error)]


def parse_document(document: Any) -> ProtocolSpec:
    """A spec from a JSON document, or ProtocolInvalid listing every problem found."""
    errors = sorted(
        _document_validator().iter_errors(document), key=lambda e: list(map(str, e.path))
    )
    if errors:
        raise ProtocolInvalid([message for error in errors for message in _schema_messages(error)])
    spec = ProtocolSpec(
        slug=document["slug"],
        name=document["name"],
        version=document["version"],
        status=Status(document["status"]),
        investigational=document["investigational"],
        couples=document["couples"],
        description=document["description"],
        span_min_weeks=document["therapy_span_weeks"]["min"],
        span_max_weeks=document["therapy_span_weeks"]["max"],
        sessions=tuple(_parse_session(s) for s in document["sessions"]),
        checkin_escalation_hours=document.get("check_ins", {}).get("escalate_after_hours", 4),
    )
    problems = validate(spec)
    if problems:
        raise ProtocolInvalid(problems)
    return spec


def _schema_messages(error: jsonschema.ValidationError) -> list[str]:
    if error.validator == "oneOf" and error.context:
        # "is not valid under any of the given schemas" helps nobody: report the errors of the
        # alternative the value was closest to, i.e. the one whose shape matched (fewest errors
        # about the value as a whole, such as its type or unexpected fields).
        branches: dict[object, list[jsonschema.ValidationError]] = {}
        for sub in error.context:
            branches.setdefault(sub.schema_path[0], []).append(sub)
        closest = min(
            branches.values(),
            key=lambda errs: (sum(1 for e in errs if not e.relative_path), len(errs)),
        )
        return [message for sub in closest for message in _schema_messages(sub)]
    where = "/".join(str(part) for part in error.absolute_path) or "document"
    return [f"{where}: {error.message}"]


def _parse_session(data: dict[str, Any]) -> SessionSpec:
    timing = data["timing"]
    if timing.get("next_morning"):
        parsed_timing = Timing.morning_after(timing["anchor"])
    else:
        earliest, latest = timing["window_days"]
        parsed_timing = Timing(timing["anchor"], timing["target_days"], earliest, latest)
    hour, minute = (int(part) for part in data["start_time"].split(":"))
    return SessionSpec(
        key=data["key"],
        title=data["title"],
        kind=Kind(data["kind"]),
        duration_minutes=data["duration_minutes"],
        overnight=data["overnight"],
        start_time=time(hour, minute),
        open_days_apply=data["open_days_apply"],
        staffing=Staffing(data["staffing"]),
        room=RoomNeed(data["room"]),
        joint=data["joint"],
        preparation=data["preparation"],
        timing=parsed_timing,
        repeat_count=data["repeat"]["count"],
        repeat_interval_days=data["repeat"]["interval_days"],
        dose_plan=_parse_dose(data["dose_plan"]),
        reminders=tuple(parse_rule(r) for r in data.get("reminders", [])),
    )


def parse_rule(data: dict[str, Any]) -> ReminderRule:
    when = data["when"]
    at = when.get("day_before_at")
    hour, minute = (0, 0) if at is None else (int(part) for part in at.split(":"))
    return ReminderRule(
        key=data["key"],
        audience=tuple(Audience(a) for a in data["audience"]),
        channels=tuple(Channel(c) for c in data["channels"]),
        message=data["message"],
        hours_before=when.get("hours_before"),
        minutes_before=when.get("minutes_before"),
        day_before_at=None if at is None else time(hour, minute),
    )


def rule_document(rule: ReminderRule) -> dict[str, Any]:
    when: dict[str, Any]
    if rule.day_before_at is not None:
        when = {"day_before_at": rule.day_before_at.strftime("%H:%M")}
    elif rule.minutes_before is not None:
        when = {"minutes_before": rule.minutes_before}
    else:
        when = {"hours_before": rule.hours_before}
    return {
        "key": rule.key,
        "when": when,
        "audience": [a.value for a in rule.audience],
        "channels": [c.value for c in rule.channels],
        "message": rule.message,
    }


def _parse_dose(data: dict[str, Any] | None) -> DosePlan | None:
    if data is None:
        return None
    window = data["supplemental_window_minutes"]
    supplemental = data["supplemental_mg"]
    return DosePlan(
        initial_mg=Decimal(str(data["initial_mg"])),
        supplemental_mg=None if supplemental is None else Decimal(str(supplemental)),
        supplemental_window_minutes=None if window is None else (window[0], window[1]),
        supplemental=Supplemental(data["supplemental"]),
    )


def to_document(spec: ProtocolSpec) -> dict[str, Any]:
    """The canonical JSON document: ``to_document(parse_document(d)) == d`` for any document
    this function wrote."""
    return {
        "format": DOCUMENT_FORMAT,
        "slug": spec.slug,
        "name": spec.name,
        "version": spec.version,
        "status": spec.status.value,
        "investigational": spec.investigational,
        "couples": spec.couples,
        "description": spec.description,
        "therapy_span_weeks": {"min": spec.span_min_weeks, "max": spec.span_max_weeks},
        "check_ins": {"escalate_after_hours": spec.checkin_escalation_hours},
        "sessions": [_session_document(s) for s in spec.sessions],
    }


def _session_document(s: SessionSpec) -> dict[str, Any]:
    timing: dict[str, Any]
    if s.timing.next_morning:
        timing = {"anchor": s.timing.anchor, "next_morning": True}
    else:
        timing = {
            "anchor": s.timing.anchor,
            "target_days": s.timing.target_days,
            "window_days": [s.timing.earliest_days, s.timing.latest_days],
        }
    return {
        "key": s.key,
        "title": s.title,
        "kind": s.kind.value,
        "duration_minutes": s.duration_minutes,
        "overnight": s.overnight,
        "start_time": s.start_time.strftime("%H:%M"),
        "open_days_apply": s.open_days_apply,
        "staffing": s.staffing.value,
        "room": s.room.value,
        "joint": s.joint,
        "preparation": s.preparation,
        "timing": timing,
        "repeat": {"count": s.repeat_count, "interval_days": s.repeat_interval_days},
        "dose_plan": _dose_document(s.dose_plan),
        "reminders": [rule_document(rule) for rule in s.reminders],
    }


def _dose_document(plan: DosePlan | None) -> dict[str, Any] | None:
    if plan is None:
        return None
    window = plan.supplemental_window_minutes
    return {
        "initial_mg": _number(plan.initial_mg),
        "supplemental_mg": None if plan.supplemental_mg is None else _number(plan.supplemental_mg),
        "supplemental_window_minutes": None if window is None else [window[0], window[1]],
        "supplemental": plan.supplemental.value,
    }


def _number(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)
