"""What a reminder says, and what stands in the way of sending it now.

``render`` fills Django templates (templates/reminders/): per message a subject, a plain-text
body, an HTML body and a short SMS text; a session kind may override any of them with
``reminders/<kind>/<file>``. Participant messages are discreet: they name the site, the date,
the local time with its zone, where and how to prepare, never the drug, the diagnosis, the arm,
the session's internal title or the participant's code (settings.REMINDER_FORBIDDEN_WORDS).

``hold_reason`` is the send-time check the send task asks right before sending: is the
session still as the message says, may this recipient get it on this channel, now?
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db.models import F
from django.template import Context, Engine
from django.template.loader import select_template
from django.urls import reverse

from protocol.models import SessionTemplate
from protocol.spec import Kind, RoomNeed, Status
from scheduling.clock import display_name, local, local_text, zone_of
from scheduling.models import (
    CheckInOutcome,
    Participant,
    Reminder,
    ScheduledSession,
    StaffBooking,
    StaffProfile,
)
from scheduling.planning import people_day, people_time
from scheduling.reminders import in_quiet_hours, quiet_hours_end


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str
    sms: str


@dataclass(frozen=True)
class Hold:
    """Why a claimed reminder does not go now: ``status`` is "skipped" (never, with the reason)
    or "pending" (later, at ``due_at``, e.g. the end of the quiet hours)."""

    status: str
    reason: str
    due_at: datetime | None = None


class Indiscreet(Exception):
    """A participant message that would name something it must not (a forbidden word from a
    site's name or a protocol's preparation notes, or the participant's code). The send task
    records the reminder as failed with this reason, so it shows on Today."""


# --- rendering -----------------------------------------------------------------------------

#: a session kind as a participant reads it: never the protocol's internal title
#: ("Dosing session 1"), which may name the treatment
PARTICIPANT_WHAT: dict[str, str] = {
    Kind.SCREENING: "your screening visit",
    Kind.PREPARATORY: "your preparation session",
    Kind.ASSESSMENT: "your interview",
    Kind.DOSING: "your full-day session",
    Kind.INTEGRATION: "your session with your therapy team",
    Kind.PHONE_CHECKIN: "your phone call with your therapist",
    Kind.FOLLOW_UP: "your follow-up interview",
    Kind.OTHER: "your session",
}

#: the same for staff emails (which pass through mail servers and lock screens too)
STAFF_WHAT: dict[str, str] = {
    Kind.SCREENING: "screening visit",
    Kind.PREPARATORY: "preparatory session",
    Kind.ASSESSMENT: "assessment",
    Kind.DOSING: "full-day session",
    Kind.INTEGRATION: "follow-up therapy session",
    Kind.PHONE_CHECKIN: "phone check-in",
    Kind.FOLLOW_UP: "follow-up assessment",
    Kind.OTHER: "session",
}

#: where a session without a room happens, as the participant's printed schedule says it
WHERE_REMOTE = {
    "video": "By video: your team sends you the link.",
    "phone": "By phone: your therapist calls you.",
}

#: the parts of a message, by their template file suffix
_PARTS = {"subject": ".subject.txt", "text": ".txt", "html": ".html", "sms": ".sms.txt"}

#: typographic characters an SMS would otherwise send as UCS-2 (70 characters a part)
_GSM_SAFE = str.maketrans(
    {
        "\u2013": "-",
        "\u2014": "-",
        "\u2018": "'",
        "\u2019": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u2026": "...",
        "\u00a0": " ",
        "\u2009": " ",
        "\u202f": " ",
    }
)

#: the GSM 03.38 alphabet (basic set and the extension table's characters)
GSM7 = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡"
    "ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà^{}\\[~]|€"
)


#: the parts each channel sends
CHANNEL_PARTS: dict[str, tuple[str, ...]] = {
    Reminder.Channel.EMAIL: ("subject", "text", "html"),
    Reminder.Channel.SMS: ("sms",),
}
ALL_PARTS = ("subject", "text", "html", "sms")


def render(reminder: Reminder, parts: tuple[str, ...] = ALL_PARTS) -> Rendered:
    """The reminder's subject, plain text, HTML and SMS text, or of those only ``parts`` (the
    send task renders what its channel sends: CHANNEL_PARTS; the others are left empty).
    Raises Indiscreet when a participant message would contain a forbidden word or the
    participant's code."""
    context = message_context(reminder)
    kind, message = reminder.session.kind, reminder.message
    subject = " ".join(_render_text(message, kind, "subject", context).split())
    context["subject"] = subject  # the HTML part's <title>
    rendered = Rendered(
        subject=subject if "subject" in parts else "",
        text=_tidy(_render_text(message, kind, "text", context)) if "text" in parts else "",
        html=(
            _template(message, kind, "html").render(context).strip() + "\n"
            if "html" in parts
            else ""
        ),
        sms=(
            " ".join(_render_text(message, kind, "sms", context).translate(_GSM_SAFE).split())
            if "sms" in parts
            else ""
        ),
    )
    if reminder.participant_id is not None:
        problem = indiscretion(
            rendered, code=reminder.participant.code if reminder.participant else ""
        )
        if problem:
            raise Indiscreet(problem)
    elif reminder.purpose == Reminder.Purpose.INVITATION:
        # an invitation names the study code (staff read it in their calendars), never the
        # drug or the diagnosis: a site's name or address could bring one in
        problem = indiscretion(rendered)
        if problem:
            raise Indiscreet(problem)
    return rendered


def message_context(reminder: Reminder) -> dict[str, Any]:
    """What the templates may say about the reminder's session, as plain strings."""
    session, site = reminder.session, reminder.site
    start = reminder.session_start  # the start this message speaks of
    end = start + (session.end - session.start)
    template = _session_template(session)
    mode = _mode(session, template)
    address = [line.strip() for line in site.address.splitlines() if line.strip()]
    what = PARTICIPANT_WHAT.get(session.kind, "your session")
    staff_what = STAFF_WHAT.get(session.kind, "session")
    context: dict[str, Any] = {
        "message": reminder.message,
        "kind": session.kind,
        "site_name": site.name,
        "site_address_lines": address,
        "site_phone": site.phone.strip(),
        "site_phone_link": re.sub(r"[^0-9+]", "", site.phone),
        "when": local_text(start, site),
        "when_short": _short(local(start, site)),
        "span": _span(local(start, site), local(end, site)),
        "time": f"{local(start, site):%H:%M %Z}",
        "overnight": session.overnight,
        "joint": bool(template and template.joint and session.course.partner_id),
        "mode": mode,
        "where": (", ".join([site.name, *address]) if mode == "site" else WHERE_REMOTE[mode]),
        "mode_short": f"by {mode}",
        "preparation": " ".join((template.preparation if template else "").split()),
        "what": what,
        "what_at": {"site": f"{what} at {site.name}", "video": f"{what} with {site.name}"}.get(
            mode, f"{what} ({site.name})"
        ),
        # fasting, what to bring for the night, no driving home: the long day's concerns
        "long_day": session.overnight or session.kind == Kind.DOSING,
        "staff_what": staff_what,
        "staff_a": "an" if staff_what.startswith(tuple("aeiou")) else "a",
        "link": absolute_url(reverse("session", args=[session.pk])),
        "escalation_hours": _escalation_hours(session),
    }
    if reminder.purpose == Reminder.Purpose.MOVED and reminder.participant is not None:
        told = _last_told(reminder)
        context["previous"] = local_text(told, site) if told else ""
    if reminder.purpose == Reminder.Purpose.ESCALATION:
        context.update(_escalation_context(reminder))
    if reminder.purpose == Reminder.Purpose.INVITATION:
        course = session.course
        codes = [course.participant.code]
        if course.partner_id is not None and course.partner is not None:
            codes.append(course.partner.code)
        context["code"] = " + ".join(codes)
        context["cancel"] = reminder.rule_key == "cancel"
        # a CANCEL for a session that stays: this person was taken off it
        context["taken_off"] = context["cancel"] and session.is_open and not session.superseded
    return context


def _escalation_hours(session: ScheduledSession) -> int:
    facts = _session_template(session)
    if facts is not None:
        return facts.escalation_hours
    return int(session.course.protocol_version.checkin_escalation_hours)


def _short(moment: datetime) -> str:
    """ "Wed 24 Mar 09:00 EDT": an SMS counts its characters; the weekday pins the date."""
    return f"{moment:%a} {moment.day} {moment:%b %H:%M %Z}"


def _span(start: datetime, end: datetime) -> str:
    """ "Tue 2 Mar 2027, 10:00 to 11:30 EST"; a zone change in between shows both zones."""
    day = people_day(start.date())
    if start.date() != end.date():
        return f"{day} {start:%H:%M %Z} to {people_time(end)}"
    if start.tzname() != end.tzname():
        return f"{day}, {start:%H:%M %Z} to {end:%H:%M %Z}"
    return f"{day}, {start:%H:%M} to {end:%H:%M %Z}"


def _escalation_context(reminder: Reminder) -> dict[str, Any]:
    """Why a check-in escalates: a concern (the outcome named in the row's key) or no
    outcome N hours after its time (the latest outcome, if any, is "no answer")."""
    outcome = _concern_of(reminder)
    cause = "concern" if outcome is not None else "overdue"
    outcome = outcome or reminder.session.checkin_outcomes.select_related("recorded_by").first()
    found: dict[str, Any] = {"cause": cause, "outcome": None}
    if outcome is not None:
        found["outcome"] = {
            "label": outcome.get_outcome_display(),
            "at": local_text(outcome.recorded_at, reminder.site),
            "by": display_name(outcome.recorded_by),
        }
    return found


def _concern_of(reminder: Reminder) -> CheckInOutcome | None:
    """The concern an escalation row was made for (key: ``.../escalation/concern-<id>/u<n>``)."""
    if reminder.concern_id is None:
        return None
    return (
        CheckInOutcome.objects.select_related("recorded_by")
        .filter(pk=reminder.concern_id, session_id=reminder.session_id)
        .first()
    )


def _last_told(reminder: Reminder) -> datetime | None:
    """The start this participant was last told of for this session (a sent reminder or
    moved notice about another start): what "has moved" moves from."""
    row = (
        Reminder.objects.filter(
            session_id=reminder.session_id,
            participant=reminder.participant,
            status=Reminder.Status.SENT,
        )
        .exclude(session_start=reminder.session_start)
        .order_by("-sent_at", "-pk")
        .first()
    )
    return row.session_start if row else None


@dataclass(frozen=True)
class _Facts:
    """What a message needs from the session's protocol template."""

    room: str
    joint: bool
    preparation: str
    escalation_hours: int


def _session_template(session: ScheduledSession) -> _Facts | None:
    return _protocol_facts(session.course.protocol_version_id, session.template_key)


def _protocol_facts(version_id: int, key: str) -> _Facts | None:
    """An active or retired protocol version never changes (protocol.models), so what it
    says is kept for the life of the process: a batch of sends reads it once. A draft's is
    read afresh."""
    cached = _FACTS.get((version_id, key))
    if cached is not None:
        return cached
    row = (
        SessionTemplate.objects.filter(version_id=version_id, key=key)
        .values("room", "joint", "preparation", "version__checkin_escalation_hours")
        .annotate(status=F("version__status"))
        .first()
    )
    if row is None:
        return None
    facts = _Facts(
        room=row["room"],
        joint=row["joint"],
        preparation=row["preparation"],
        escalation_hours=row["version__checkin_escalation_hours"],
    )
    if row["status"] != Status.DRAFT and len(_FACTS) < 10_000:
        _FACTS[(version_id, key)] = facts
    return facts


_FACTS: dict[tuple[int, str], _Facts] = {}


def _mode(session: ScheduledSession, template: _Facts | None) -> str:
    """site, video or phone: the same rule as the participant's printed schedule."""
    if session.kind == Kind.PHONE_CHECKIN:
        return "phone"
    needs_room = template.room != RoomNeed.NONE if template else session.room_id is not None
    return "site" if needs_room else "video"


def absolute_url(path: str) -> str:
    return f"{settings.SITE_URL}{path}"


def _names(message: str, kind: str, part: str) -> list[str]:
    suffix = _PARTS[part]
    return [f"reminders/{kind}/{message}{suffix}", f"reminders/{message}{suffix}"]


def _template(message: str, kind: str, part: str) -> Any:
    return select_template(_names(message, kind, part))


@cache
def _text_engine(dirs: tuple[str, ...]) -> Engine:
    """Plain text and SMS are not HTML: an ampersand in an address stays an ampersand. The
    same template directories, without autoescaping (the HTML part keeps it)."""
    return Engine(dirs=list(dirs), app_dirs=False, autoescape=False)


def _render_text(message: str, kind: str, part: str, context: dict[str, Any]) -> str:
    engines: list[dict[str, Any]] = settings.TEMPLATES
    dirs = tuple(str(d) for t in engines for d in t.get("DIRS", []))
    template = _text_engine(dirs).select_template(_names(message, kind, part))
    return str(template.render(Context(context, autoescape=False)))


def _tidy(text: str) -> str:
    """Template tags leave blank lines and trailing spaces behind: at most one blank line."""
    lines = [line.rstrip() for line in text.strip().splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)) + "\n"


def is_gsm7(text: str) -> bool:
    """Whether an SMS text fits the GSM 7-bit alphabet (160 characters a part, not 70)."""
    return all(ch in GSM7 for ch in text)


# --- discretion ----------------------------------------------------------------------------


@cache
def _forbidden_pattern(words: tuple[str, ...]) -> re.Pattern[str] | None:
    """Whole words; ``word*`` also matches longer words starting with it. It matches case-folded
    text (:func:`forbidden_words_in`): folding once and matching exactly is several times
    faster than matching without regard to case, on every part of every message sent."""
    alternatives = []
    for word in words:
        word = word.strip().casefold()
        if not word:
            continue
        if word.endswith("*"):
            alternatives.append(re.escape(word[:-1]) + r"\w*")
        else:
            alternatives.append(re.escape(word))
    if not alternatives:
        return None
    return re.compile(r"(?<!\w)(?:" + "|".join(alternatives) + r")(?!\w)")


def forbidden_words_in(text: str) -> list[str]:
    """The forbidden words in ``text``, in any case, as written there
    (settings.REMINDER_FORBIDDEN_WORDS)."""
    pattern = _forbidden_pattern(tuple(settings.REMINDER_FORBIDDEN_WORDS))
    if pattern is None:
        return []
    folded = text.casefold()
    # Folding never shortens a character; when it lengthened none ("ß" to "ss"), the
    # positions in the folded text are those in the text, and a word shows as written.
    aligned = len(folded) == len(text)
    found = {text[m.start() : m.end()] if aligned else m.group(0) for m in pattern.finditer(folded)}
    return sorted(found, key=str.casefold)


def _contains_code(text: str, code: str) -> bool:
    return (
        re.search(rf"(?<![\w-]){re.escape(code.casefold())}(?![\w-])", text.casefold()) is not None
    )


def indiscretion(rendered: Rendered, *, code: str = "") -> str:
    """Why ``rendered`` may not go to a participant, or "" when it may."""
    values = [getattr(rendered, part) for part in ALL_PARTS]
    whole = "\n".join(values)  # one look at the whole message first: almost always clean
    if not forbidden_words_in(whole) and not (code and _contains_code(whole, code)):
        return ""
    found: dict[str, list[str]] = {}
    for part, value in zip(ALL_PARTS, values, strict=True):
        words = forbidden_words_in(value)
        if code and _contains_code(value, code):
            words.append("the participant's study code")
        for word in words:
            found.setdefault(word, []).append(part)
    named = "; ".join(f"“{word}” in the {', '.join(parts)}" for word, parts in found.items())
    return (
        f"Not sent: the message would contain {named}. Check the site's name and address and "
        "the protocol's preparation notes for this session, then plan the reminder again."
    )


# --- message ids ---------------------------------------------------------------------------


def message_id(reminder: Reminder) -> str:
    """The email's Message-ID: the same for every attempt of one row (a retried send is
    recognisably the same message), different for every row."""
    digest = hashlib.sha256(reminder.idempotency_key.encode()).hexdigest()[:40]
    return f"<reminder.{digest}@{urlsplit(settings.SITE_URL).hostname}>"


# --- the send-time check -------------------------------------------------------------------


def hold_reason(reminder: Reminder, now: datetime) -> Hold | None:
    """None when the reminder may go now; else why not, in plain words, and whether it goes
    later (pending at ``due_at``) or never (skipped)."""
    if reminder.purpose == Reminder.Purpose.ESCALATION:
        return _escalation_hold(reminder, now) or _staff_hold(reminder)
    if reminder.purpose == Reminder.Purpose.INVITATION:
        return _invitation_hold(reminder, now)
    return _session_hold(reminder, now) or (
        _participant_hold(reminder, now)
        if reminder.participant_id is not None
        else _staff_hold(reminder)
    )


CLOSED: dict[str, str] = {
    ScheduledSession.Status.CANCELLED: "The session was cancelled.",
    ScheduledSession.Status.COMPLETED: "The session is completed.",
    ScheduledSession.Status.MISSED: "The session was marked missed.",
}


def _skip(reason: str) -> Hold:
    return Hold(status=Reminder.Status.SKIPPED, reason=reason)


def _session_hold(reminder: Reminder, now: datetime) -> Hold | None:
    session, site = reminder.session, reminder.site
    if session.superseded:
        return _skip("The session was rebooked; the new booking has reminders of its own.")
    if not session.is_open:
        return _skip(CLOSED.get(session.status, f"The session is {session.status}."))
    if session.start != reminder.session_start:
        return _skip(
            f"The session moved to {local_text(session.start, site)}; "
            "the reminders for the new time go instead."
        )
    if now >= session.start:
        return _skip(f"Too late: the session began at {local_text(session.start, site)}.")
    return None


def _participant_hold(reminder: Reminder, now: datetime) -> Hold | None:
    person, site = reminder.participant, reminder.site
    assert person is not None
    if person.status == Participant.Status.WITHDRAWN:
        return _skip("The participant has withdrawn.")
    if person.reminders_paused_at is not None:
        since = local_text(person.reminders_paused_at, site)
        why = person.reminders_pause_reason.strip() or "no reason given"
        return _skip(f"Reminders paused by staff: {why} (since {since}).")
    if reminder.channel == Reminder.Channel.SMS:
        if person.sms_consent_at is None:
            return _skip(_no_consent(person, "sms", "text messages"))
        if not person.phone.strip():
            return _skip("No mobile number on file for text messages.")
    else:
        if person.email_consent_at is None:
            return _skip(_no_consent(person, "email", "email reminders"))
        if not person.email.strip():
            return _skip("No email address on file.")
    zone = zone_of(site)
    assert zone is not None
    if in_quiet_hours(now, zone, site.quiet_hours_start, site.quiet_hours_end):
        quiet = f"{site.quiet_hours_start:%H:%M} to {site.quiet_hours_end:%H:%M}"
        ends = quiet_hours_end(now, zone, site.quiet_hours_start, site.quiet_hours_end)
        if ends < reminder.session_start:
            return Hold(
                status=Reminder.Status.PENDING,
                reason=f"Quiet hours at {site.name} ({quiet}): goes at {local_text(ends, site)}.",
                due_at=ends,
            )
        return _skip(
            f"Quiet hours at {site.name} ({quiet}) last until the session begins at "
            f"{local_text(reminder.session_start, site)}."
        )
    return None


def _no_consent(person: Participant, channel: str, what: str) -> str:
    """ "No consent to text messages (withdrawn on <when> (<how>))", from the audit history:
    the first change of the current run without consent."""
    field = f"{channel}_consent_at"
    withdrawn = None
    history: Any = person.history  # simple-history's manager
    records = history.order_by("-history_date", "-history_id").values(
        field, "history_date", "history_change_reason"
    )
    for record in records[:200]:
        if record[field] is not None:
            break
        withdrawn = record
    else:
        return f"No consent to {what}."  # never given (or history too long to tell)
    if withdrawn is None:  # consent present in the latest history; the row is stale
        return f"No consent to {what}."
    how = (withdrawn["history_change_reason"] or "").strip()
    source = re.search(r"\(([^()]+)\)\s*$", how)
    how = source.group(1) if source else how
    when = local_text(withdrawn["history_date"], person.site)
    return f"No consent to {what} (withdrawn on {when}{f', {how}' if how else ''})."


def _staff_hold(reminder: Reminder) -> Hold | None:
    user = reminder.staff
    if user is None:
        return _skip("The reminder has no recipient.")
    name = display_name(user)
    if not user.is_active:
        return _skip(f"{name}'s account is switched off.")
    if not user.email.strip():
        return _skip(f"{name} has no email address: add one in the admin.")
    if reminder.purpose == Reminder.Purpose.ESCALATION:
        if not _coordinator_of(user.pk, reminder.site_id):
            return _skip(f"{name} is no longer a coordinator at {reminder.site.name}.")
        return None
    booked = StaffBooking.objects.filter(
        session_id=reminder.session_id, user_id=user.pk, active=True
    ).exists()
    if not booked and not _coordinator_of(user.pk, reminder.site_id):
        return _skip(f"{name} is no longer booked on this session.")
    return None


def _invitation_hold(reminder: Reminder, now: datetime) -> Hold | None:
    """An invitation goes only while it is the session's current state: a newer SEQUENCE has
    its own row (planned by the same change), so this one is superseded. A REQUEST goes only
    to someone still booked on an open session; a CANCEL to whoever it names."""
    session, site = reminder.session, reminder.site
    sequence = reminder.invitation_sequence
    if sequence is None or sequence < session.sequence:
        return _skip(
            "Superseded: the session changed again since; the invitation for its latest "
            "state goes instead."
        )
    if now >= session.end:
        return _skip(f"The session is over (it ended {local_text(session.end, site)}).")
    user = reminder.staff
    if user is None:
        return _skip("The invitation has no recipient.")
    name = display_name(user)
    if not user.is_active:
        return _skip(f"{name}'s account is switched off.")
    if not user.email.strip():
        return _skip(f"{name} has no email address: add one in the admin.")
    if reminder.rule_key != "cancel":
        if session.superseded or not session.is_open:
            return _skip(CLOSED.get(session.status, f"The session is {session.status}."))
        booked = StaffBooking.objects.filter(
            session_id=reminder.session_id, user_id=user.pk, active=True
        ).exists()
        if not booked:
            return _skip(f"{name} is no longer booked on this session.")
    return None


def _coordinator_of(user_id: int, site_id: int) -> bool:
    return StaffProfile.objects.filter(
        user_id=user_id, role=StaffProfile.Role.COORDINATOR, sites__id=site_id
    ).exists()


def _escalation_hold(reminder: Reminder, now: datetime) -> Hold | None:
    """A concern always goes. An overdue check-in goes unless it was cancelled or someone has
    been reached (or a concern already told the coordinators)."""
    if _concern_of(reminder) is not None:
        return None
    if reminder.concern_id is not None:
        return _skip("The concern this escalation was about is no longer on record.")
    session, site = reminder.session, reminder.site
    if session.superseded or session.status == ScheduledSession.Status.CANCELLED:
        return _skip("The check-in was cancelled.")
    latest = session.checkin_outcomes.select_related("recorded_by").first()
    if latest is not None and latest.outcome == CheckInOutcome.Outcome.REACHED:
        return _skip(
            f"The participant was reached (recorded {local_text(latest.recorded_at, site)} "
            f"by {display_name(latest.recorded_by)})."
        )
    if latest is not None and latest.outcome == CheckInOutcome.Outcome.CONCERN:
        return _skip(
            f"A concern was recorded {local_text(latest.recorded_at, site)}; "
            "the coordinators were told then."
        )
    # the check-in moved after this row was planned: it escalates from its new time
    due = session.start + timedelta(hours=_escalation_hours(session))
    if now < due:
        return Hold(
            status=Reminder.Status.PENDING,
            reason=f"The check-in is now at {local_text(session.start, site)}; "
            f"escalates at {local_text(due, site)} if no one is reached.",
            due_at=due,
        )
    return None
