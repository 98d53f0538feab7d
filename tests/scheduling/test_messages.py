"""What reminders say and when they are held back (scheduling.messages): every message of both
shipped protocols is rendered from real rows and checked for forbidden words and the
participant's code; the send-time checks run on real rows with explicit ``now``s."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import User

from protocol.selectors import protocol_spec
from protocol.spec import MESSAGES, STAFF_AUDIENCES, Audience
from scheduling import messages
from scheduling.messages import (
    Indiscreet,
    Rendered,
    forbidden_words_in,
    hold_reason,
    indiscretion,
    is_gsm7,
    message_id,
    render,
)
from scheduling.models import (
    CheckInOutcome,
    Course,
    Participant,
    Reminder,
    ScheduledSession,
    Site,
    StaffBooking,
)
from scheduling.services import participant_enrol
from tests.conftest import make_site, make_staff

pytestmark = pytest.mark.django_db

NEW_YORK = ZoneInfo("America/New_York")
START = date(2027, 3, 1)  # a Monday
ADDRESS = "200 Riverside Drive, Suite 4\nNew York, NY 10025"
PHONE = "+1 212 555 0100"
ALL_MESSAGES = [*MESSAGES, "moved", "checkin_escalation", "invitation"]
ROOT = Path(__file__).resolve().parent.parent.parent


# --- building state through the services ---------------------------------------------------


@pytest.fixture
def site(db: Any) -> Site:
    site: Site = make_site("rs", couples_room=True)
    site.name = "Riverside Clinic"
    site.address = ADDRESS
    site.phone = PHONE
    site.save()
    return site


@pytest.fixture
def coordinator(site: Site) -> User:
    user: User = make_staff("rs-coordinator", "coordinator", site)
    user.email = "coordinator@example.org"
    user.save()
    return user


def _contact(n: int) -> dict[str, str]:
    return {
        "preferred_channel": "sms",
        "email": f"p{n}@example.org",
        "phone": f"+1 212 555 01{n:02d}",
    }


def _consenting(course: Course) -> None:
    for person in Participant.objects.filter(pk__in=[course.participant_id, course.partner_id]):
        person.email_consent_at = person.sms_consent_at = datetime(2027, 1, 5, 15, tzinfo=UTC)
        person._change_reason = "consent given (enrolment form)"  # type: ignore[attr-defined]
        person.save()
    User.objects.filter(username__startswith=f"{course.participant.site.slug}-").update(
        email="staff@example.org"
    )


@pytest.fixture
def mapp(site: Site, coordinator: User) -> Course:
    course = participant_enrol(
        site=site,
        code="RIV-0042",
        protocol_slug="mapp-ptsd",
        start_date=START,
        by=coordinator,
        contact=_contact(42),
    )
    _consenting(course)
    return course


@pytest.fixture
def couple(site: Site, coordinator: User) -> Course:
    course = participant_enrol(
        site=site,
        code="RIV-0051",
        partner_code="RIV-0052",
        protocol_slug="mdma-cbct-couples",
        start_date=START + timedelta(days=14),
        by=coordinator,
        contact=_contact(51),
    )
    _consenting(course)
    return course


def _row(session: ScheduledSession, message: str, channel: str, **recipient: Any) -> Reminder:
    """An outbox row as the planning side writes it."""
    purpose = {
        "moved": "moved",
        "checkin_escalation": "escalation",
        "invitation": "invitation",
    }.get(message, "reminder")
    who: Any = recipient.get("participant") or recipient.get("staff")
    tag = f"p{who.pk}" if "participant" in recipient else f"u{who.pk}"
    key = f"{session.uid}/{message}/{tag}/{channel}/{Reminder.objects.count()}"
    row = Reminder.objects.create(
        site=session.course.participant.site,
        session=session,
        purpose=purpose,
        rule_key=message,
        message=message,
        channel=channel,
        due_at=session.start - timedelta(hours=24),
        session_start=session.start,
        idempotency_key=key,
        **recipient,
    )
    return Reminder.objects.get(pk=row.pk)  # read back, as the send task does


def _every_row(course: Course) -> list[Reminder]:
    """Every rule of every session for every recipient and channel; a moved notice per
    participant and channel; both escalations of every check-in; and, so that a protocol
    author's choice can never produce an indiscreet text, every message for every session."""
    spec = protocol_spec(course.protocol_version)
    coordinators = list(User.objects.filter(staff_profile__role="coordinator"))
    rows: list[Reminder] = []
    for session in course.sessions.filter(superseded=False):
        template = spec.session(session.template_key)
        people = [course.participant]
        if template.joint and course.partner is not None:
            people.append(course.partner)
        booked = [b.user for b in StaffBooking.objects.filter(session=session, active=True)]
        for rule in template.reminders:
            for audience in rule.audience:
                if audience == Audience.PARTICIPANT:
                    for person in people:
                        for channel in rule.channels:
                            rows.append(_row(session, rule.message, channel, participant=person))
                else:
                    assert audience in STAFF_AUDIENCES
                    staff = coordinators if audience == Audience.COORDINATORS else booked
                    for user in staff:
                        rows.append(_row(session, rule.message, "email", staff=user))
        for person in people:
            for way in ("email", "sms"):
                rows.append(_row(session, "moved", way, participant=person))
                for message in MESSAGES:
                    rows.append(_row(session, message, way, participant=person))
        if session.kind == "phone_checkin":
            concern = CheckInOutcome.objects.create(
                session=session,
                outcome="concern",
                note="PTSD symptoms, dose?",
                recorded_by=booked[0],
            )
            for user in coordinators:
                rows.append(_row(session, "checkin_escalation", "email", staff=user))
                row = _row(session, "checkin_escalation", "email", staff=user)
                row.idempotency_key = f"{session.uid}/escalation/concern-{concern.pk}/u{user.pk}"
                row.save()
                rows.append(row)
        for user in booked[:1]:
            for message in ALL_MESSAGES:
                rows.append(_row(session, message, "email", staff=user))
        for user in booked:  # a calendar invitation and its cancellation to everyone booked
            for method in ("request", "cancel"):
                row = _row(session, "invitation", "email", staff=user)
                row.rule_key = method
                # (beside the rows enrolment planned for the same state)
                key = f"{session.uid}/invite/u{user.pk}/s{session.sequence}/{method}/all"
                row.idempotency_key = key
                row.save()
                rows.append(row)
    return rows


def leaks(rendered: Rendered, *, codes: list[str], titles: list[str]) -> list[str]:
    """What a participant could learn that they must not: forbidden words, a study code, a
    session's internal title; per part."""
    found = []
    for part in ("subject", "text", "html", "sms"):
        value = getattr(rendered, part)
        found += [f"{part}: {word}" for word in forbidden_words_in(value)]
        found += [f"{part}: code {code}" for code in codes if code.lower() in value.lower()]
        found += [f"{part}: title {title}" for title in titles if title.lower() in value.lower()]
    return found


# --- every message of both shipped protocols ----------------------------------------------


def test_every_message_of_both_shipped_protocols_is_discreet(
    mapp: Course, couple: Course, site: Site
) -> None:
    codes = ["RIV-0042", "RIV-0051", "RIV-0052"]
    titles = list(ScheduledSession.objects.values_list("title", flat=True).distinct())
    checked = {"participant": 0, "staff": 0, "invitation": 0}
    messages_seen = set()
    for course in (mapp, couple):
        for row in _every_row(course):
            rendered = render(row)
            messages_seen.add(row.message)
            for part in ("subject", "text", "html", "sms"):
                assert getattr(rendered, part).strip(), (row.message, part)
            if row.participant_id is not None:
                checked["participant"] += 1
                assert leaks(rendered, codes=codes, titles=titles) == [], (row.message, rendered)
                assert "Riverside Clinic" in rendered.text
                assert row.session.kind != "dosing" or "dosing" not in rendered.html.lower()
            elif row.purpose == "invitation":
                checked["invitation"] += 1
                # an invitation names the code, as the staff member's calendar does; no more
                assert leaks(rendered, codes=[], titles=titles) == [], (row.message, rendered)
                course_codes = [row.session.course.participant.code]
                assert all(code in rendered.subject for code in course_codes), rendered.subject
                cancelled = rendered.subject.startswith("Cancelled: ")
                assert cancelled == (row.rule_key == "cancel"), rendered.subject
            else:
                checked["staff"] += 1
                # staff emails carry no study code: the link (behind sign-in) says who
                assert leaks(rendered, codes=codes, titles=titles) == [], (row.message, rendered)
    assert messages_seen == set(ALL_MESSAGES)
    assert checked["participant"] > 300 and checked["staff"] > 50, checked
    assert checked["invitation"] > 100, checked


def test_participant_messages_name_site_time_place_preparation_and_phone(mapp: Course) -> None:
    dosing = mapp.sessions.get(key="dosing-1")
    person = mapp.participant
    ahead = render(_row(dosing, "dosing_ahead", "email", participant=person))
    local = dosing.start.astimezone(NEW_YORK)
    when = f"{local:%a} {local.day} {local:%b %Y} 09:00 {local:%Z}"
    assert when in ahead.subject
    span = f"{local:%a} {local.day} {local:%b %Y}, 09:00 to 17:00 {local:%Z}"
    assert f"When:  {span}, then an overnight stay until the next morning" in ahead.text
    assert span in ahead.html
    assert "200 Riverside Drive, Suite 4" in ahead.text and "New York, NY 10025" in ahead.html
    assert PHONE in ahead.text and 'href="tel:+12125550100"' in ahead.html
    assert "Your full-day session at Riverside Clinic is coming up" in ahead.text
    assert "overnight stay" in ahead.text
    assert "arrange now for someone to take you home" in ahead.text
    assert "comfortable clothes" in ahead.text  # the protocol's preparation notes
    assert dosing.room is not None and dosing.room.name not in ahead.text + ahead.html

    video = mapp.sessions.get(key="baseline")
    upcoming = render(_row(video, "upcoming", "sms", participant=person))
    assert "By video: your team sends you the link." in upcoming.text
    assert "200 Riverside Drive" not in upcoming.text
    assert "quiet, private place" in upcoming.text
    assert "by video" in upcoming.sms and "Reply STOP to opt out" in upcoming.sms


def test_a_couples_joint_session_speaks_to_both_partners_without_either_code(
    couple: Course,
) -> None:
    dosing = couple.sessions.get(key="dosing-1")
    assert couple.partner is not None
    for person in (couple.participant, couple.partner):
        evening = render(_row(dosing, "dosing_evening", "email", participant=person))
        assert "for both of you" in evening.text and "for both of you" in evening.html
        assert "RIV-0051" not in evening.text + evening.html
        assert "RIV-0052" not in evening.text + evening.html
        assert "Do not drive" in evening.text  # the protocol's preparation notes


def test_text_parts_are_not_html_escaped_and_the_html_part_is(mapp: Course, site: Site) -> None:
    site.name = "Rivers & Sons <Clinic>"
    site.save()
    row = _row(mapp.sessions.get(key="prep-1"), "upcoming", "email", participant=mapp.participant)
    rendered = render(row)
    assert "Rivers & Sons <Clinic>" in rendered.text and "Rivers & Sons <Clinic>" in rendered.sms
    assert "Rivers &amp; Sons &lt;Clinic&gt;" in rendered.html
    assert "<Clinic>" not in rendered.html
    assert '<html lang="en">' in rendered.html and "<title>" in rendered.html


def test_sms_texts_fit_one_gsm7_part(mapp: Course, couple: Course) -> None:
    for course in (mapp, couple):
        for row in _every_row(course):
            if row.participant_id is None:
                continue
            sms = render(row).sms
            assert is_gsm7(sms), sms
            assert len(sms) <= 160, (len(sms), sms)


def test_the_moved_notice_says_the_new_time_and_the_one_told_before(mapp: Course) -> None:
    session = mapp.sessions.get(key="prep-2")
    person = mapp.participant
    told = _row(session, "upcoming", "email", participant=person)
    old_start = session.start
    new_start = session.start + timedelta(days=2)
    Reminder.objects.filter(pk=told.pk).update(
        status="sent", sent_at=old_start - timedelta(hours=24)
    )
    ScheduledSession.objects.filter(pk=session.pk).update(
        start=new_start, end=new_start + (session.end - session.start)
    )
    session.refresh_from_db()
    notice = render(_row(session, "moved", "email", participant=person))
    assert notice.subject.startswith("Your appointment has moved")
    new_local, old_local = new_start.astimezone(NEW_YORK), old_start.astimezone(NEW_YORK)
    assert f"{new_local:%a} {new_local.day} {new_local:%b %Y} 10:00" in notice.text
    assert f"before: {old_local:%a} {old_local.day} {old_local:%b %Y} 10:00" in notice.text


def test_escalations_link_to_the_session_page_with_an_absolute_address(
    mapp: Course, coordinator: User, settings: Any
) -> None:
    settings.SITE_URL = "https://clinic.example.org"
    check_in = mapp.sessions.filter(kind="phone_checkin").first()
    assert check_in is not None
    therapist = StaffBooking.objects.filter(session=check_in).first().user  # type: ignore[union-attr]
    therapist.first_name, therapist.last_name = "Ada", "Ngo"
    therapist.save()
    overdue = render(_row(check_in, "checkin_escalation", "email", staff=coordinator))
    link = f"https://clinic.example.org/sessions/{check_in.pk}/"
    assert link in overdue.text and f'href="{link}"' in overdue.html
    assert overdue.subject.startswith("Check-in without an outcome")
    assert "Nothing has been recorded" in overdue.text

    CheckInOutcome.objects.create(session=check_in, outcome="no_answer", recorded_by=therapist)
    later = render(_row(check_in, "checkin_escalation", "email", staff=coordinator))
    assert "The latest one recorded: no answer" in later.text and "Ada Ngo" in later.text

    concern = CheckInOutcome.objects.create(
        session=check_in, outcome="concern", note="private words", recorded_by=therapist
    )
    row = _row(check_in, "checkin_escalation", "email", staff=coordinator)
    row.idempotency_key = f"{check_in.uid}/escalation/concern-{concern.pk}/u{coordinator.pk}"
    row.save()
    told = render(row)
    assert told.subject.startswith("Concern recorded at a check-in")
    assert "Ada Ngo recorded a concern" in told.text and link in told.text
    assert "private words" not in told.text + told.html  # the note stays behind sign-in
    assert "RIV-0042" not in told.text + told.html + told.subject


# --- the check can fail ----------------------------------------------------------------------


def test_the_check_catches_a_planted_word_and_the_code(mapp: Course, settings: Any) -> None:
    row = _row(mapp.sessions.get(key="prep-1"), "upcoming", "email", participant=mapp.participant)
    clean = render(row)
    assert leaks(clean, codes=["RIV-0042"], titles=[]) == []

    settings.REMINDER_FORBIDDEN_WORDS = [*settings.REMINDER_FORBIDDEN_WORDS, "riverside"]
    assert "text: Riverside" in leaks(clean, codes=[], titles=[])
    with pytest.raises(Indiscreet, match="“Riverside” in the subject, text, html, sms"):
        render(row)

    planted = Rendered(subject="Your dosing day", text="RIV-0042", html="<p>MDMA</p>", sms="ok")
    assert leaks(planted, codes=["RIV-0042"], titles=[]) == [
        "subject: dosing",
        "text: code RIV-0042",
        "html: MDMA",
    ]
    assert "the participant's study code" in indiscretion(planted, code="RIV-0042")


def test_a_protocols_preparation_notes_cannot_smuggle_a_word_out(mapp: Course) -> None:
    from protocol.models import SessionTemplate

    session = mapp.sessions.get(key="prep-1")
    SessionTemplate.objects.filter(version=mapp.protocol_version, key=session.template_key).update(
        preparation="Bring your placebo diary."
    )
    # an active version never changes, so senders keep what it says: this test changed one
    # behind the model's back, so it makes them read it again
    messages._FACTS.clear()
    row = _row(session, "upcoming", "sms", participant=mapp.participant)
    with pytest.raises(Indiscreet, match="placebo"):
        render(row)


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("Your Dosing session", ["Dosing"]),
        ("MDMA-assisted", ["MDMA"]),
        ("post-traumatic stress", ["post-traumatic"]),
        ("traumatic", ["traumatic"]),
        ("3,4-methylenedioxymethamphetamine", ["methylenedioxymethamphetamine"]),
        ("an alarm, a warm room, the harmonica", []),
        ("a drugstore nearby; a dossier", []),
        ("120 mg at 10:00", ["mg"]),
        ("the study ARM", ["ARM"]),
    ],
)
def test_forbidden_words_are_whole_words_in_any_case(text: str, found: list[str]) -> None:
    assert forbidden_words_in(text) == found


def test_the_forbidden_list_is_extended_from_the_environment() -> None:
    script = (
        "import django; django.setup(); from django.conf import settings; "
        "print(settings.REMINDER_FORBIDDEN_WORDS[-2:], 'mdma' in settings.REMINDER_FORBIDDEN_WORDS)"
    )
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DEBUG": "1",
        "REMINDER_FORBIDDEN_WORDS": "sponsorname, protocol-x*",
    }
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['sponsorname', 'protocol-x*'] True"

    env["SITE_URL"] = "clinic.example.org"  # no scheme
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode != 0 and "SITE_URL='clinic.example.org' is not an address" in done.stderr


def test_a_session_kind_may_have_its_own_wording(
    mapp: Course, settings: Any, tmp_path: Path
) -> None:
    (tmp_path / "reminders" / "assessment").mkdir(parents=True)
    (tmp_path / "reminders" / "assessment" / "upcoming.sms.txt").write_text(
        "{{ site_name }}: video interview {{ when }}."
    )
    settings.TEMPLATES = [
        {**settings.TEMPLATES[0], "DIRS": [tmp_path, *settings.TEMPLATES[0]["DIRS"]]}
    ]
    person = mapp.participant
    video = render(_row(mapp.sessions.get(key="baseline"), "upcoming", "sms", participant=person))
    assert video.sms.startswith("Riverside Clinic: video interview ")
    on_site = render(_row(mapp.sessions.get(key="prep-1"), "upcoming", "sms", participant=person))
    assert on_site.sms.startswith("Reminder: your preparation session")


# --- message ids -----------------------------------------------------------------------------


def test_message_id_is_stable_per_row_and_unique_across_rows(mapp: Course, settings: Any) -> None:
    settings.SITE_URL = "https://clinic.example.org"
    session = mapp.sessions.get(key="prep-1")
    one = _row(session, "upcoming", "email", participant=mapp.participant)
    other = _row(session, "upcoming", "sms", participant=mapp.participant)
    first = message_id(one)
    one.refresh_from_db()
    assert message_id(one) == first
    assert message_id(other) != first
    assert re.fullmatch(r"<reminder\.[0-9a-f]{40}@clinic\.example\.org>", first)
    assert one.idempotency_key not in first  # no session uid or participant id in a header


# --- hold_reason: the send-time checks ------------------------------------------------------


def _at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=NEW_YORK)


@pytest.fixture
def prep(mapp: Course) -> ScheduledSession:
    session: ScheduledSession = mapp.sessions.get(key="prep-2")
    return session


def _day_before(session: ScheduledSession) -> date:
    return session.start.astimezone(NEW_YORK).date() - timedelta(days=1)


def test_an_open_unchanged_session_with_consent_goes(prep: ScheduledSession) -> None:
    person = prep.course.participant
    for channel in ("email", "sms"):
        row = _row(prep, "upcoming", channel, participant=person)
        assert hold_reason(row, _at(_day_before(prep), 10)) is None


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        ("cancelled", "The session was cancelled."),
        ("completed", "The session is completed."),
        ("missed", "The session was marked missed."),
    ],
)
def test_a_closed_session_skips(prep: ScheduledSession, status: str, reason: str) -> None:
    row = _row(prep, "upcoming", "email", participant=prep.course.participant)
    ScheduledSession.objects.filter(pk=prep.pk).update(status=status)
    row.refresh_from_db()
    held = hold_reason(row, _at(_day_before(prep), 10))
    assert held == messages.Hold("skipped", reason)


def test_a_moved_session_skips_the_reminder_for_the_old_time(prep: ScheduledSession) -> None:
    row = _row(prep, "upcoming", "email", participant=prep.course.participant)
    moved = prep.start + timedelta(days=1, hours=2)
    ScheduledSession.objects.filter(pk=prep.pk).update(
        start=moved, end=moved + timedelta(minutes=90)
    )
    row.refresh_from_db()
    held = hold_reason(row, _at(_day_before(prep), 10))
    assert held is not None and held.status == "skipped"
    local = moved.astimezone(NEW_YORK)
    assert held.reason == (
        f"The session moved to {local:%a} {local.day} {local:%b %Y} 12:00 {local:%Z}; "
        "the reminders for the new time go instead."
    )


def test_too_late_once_the_session_began(prep: ScheduledSession) -> None:
    row = _row(prep, "upcoming", "email", participant=prep.course.participant)
    assert hold_reason(row, prep.start - timedelta(minutes=1)) is None
    held = hold_reason(row, prep.start)
    assert held is not None and held.status == "skipped"
    assert held.reason.startswith("Too late: the session began at ")


def test_a_withdrawn_or_paused_participant_gets_nothing(prep: ScheduledSession) -> None:
    person = prep.course.participant
    row = _row(prep, "upcoming", "email", participant=person)
    now = _at(_day_before(prep), 10)
    Participant.objects.filter(pk=person.pk).update(
        reminders_paused_at=datetime(2027, 2, 1, 15, tzinfo=UTC),
        reminders_pause_reason="in hospital, call the family instead",
    )
    row.refresh_from_db()
    assert hold_reason(row, now) == messages.Hold(
        "skipped",
        "Reminders paused by staff: in hospital, call the family instead "
        "(since Mon 1 Feb 2027 10:00 EST).",
    )
    Participant.objects.filter(pk=person.pk).update(status="withdrawn")
    row.refresh_from_db()
    assert hold_reason(row, now) == messages.Hold("skipped", "The participant has withdrawn.")


def test_no_consent_says_when_and_how_it_was_withdrawn(prep: ScheduledSession) -> None:
    person = Participant.objects.get(pk=prep.course.participant_id)
    row = _row(prep, "upcoming", "sms", participant=person)
    # as the inbound STOP does it: a save with its reason in the audit history
    person.sms_consent_at = None
    person._change_reason = "sms consent withdrawn (text message reply)"  # type: ignore[attr-defined]
    person.save()
    stop = person.history.first().history_date
    row.refresh_from_db()
    held = hold_reason(row, _at(_day_before(prep), 10))
    local = stop.astimezone(NEW_YORK)
    assert held == messages.Hold(
        "skipped",
        f"No consent to text messages (withdrawn on {local:%a} {local.day} {local:%b %Y} "
        f"{local:%H:%M %Z}, text message reply).",
    )
    email = _row(prep, "upcoming", "email", participant=person)
    assert hold_reason(email, _at(_day_before(prep), 10)) is None

    never = Participant.objects.create(site=person.site, code="RIV-0099", phone="+12125550199")
    row = _row(prep, "upcoming", "sms", participant=never)
    assert hold_reason(row, _at(_day_before(prep), 10)) == messages.Hold(
        "skipped", "No consent to text messages."
    )


def test_no_address_for_the_channel_skips(prep: ScheduledSession) -> None:
    person = prep.course.participant
    Participant.objects.filter(pk=person.pk).update(phone="", email="")
    now = _at(_day_before(prep), 10)
    sms = _row(prep, "upcoming", "sms", participant=person)
    email = _row(prep, "upcoming", "email", participant=person)
    assert hold_reason(sms, now) == messages.Hold(
        "skipped", "No mobile number on file for text messages."
    )
    assert hold_reason(email, now) == messages.Hold("skipped", "No email address on file.")


def test_quiet_hours_hold_until_they_end_or_skip_when_no_time_is_left(
    prep: ScheduledSession,
) -> None:
    row = _row(prep, "upcoming", "sms", participant=prep.course.participant)
    evening = _at(_day_before(prep), 22, 30)
    held = hold_reason(row, evening)
    assert held is not None and held.status == "pending"
    assert held.due_at == _at(_day_before(prep) + timedelta(days=1), 8)
    assert held.reason.startswith("Quiet hours at Riverside Clinic (21:00 to 08:00): goes at ")
    assert hold_reason(row, _at(_day_before(prep), 20, 59)) is None

    # a session that begins before the quiet hours end: nothing is left to send into
    early = _at(_day_before(prep) + timedelta(days=1), 7, 30)
    ScheduledSession.objects.filter(pk=prep.pk).update(start=early, end=early + timedelta(hours=1))
    Reminder.objects.filter(pk=row.pk).update(session_start=early)
    row.refresh_from_db()
    held = hold_reason(row, evening)
    assert held is not None and held.status == "skipped"
    assert "last until the session begins at" in held.reason


def test_staff_quiet_hours_do_not_apply_but_the_booking_and_email_do(mapp: Course) -> None:
    check_in = mapp.sessions.filter(kind="phone_checkin").first()
    assert check_in is not None
    booking = StaffBooking.objects.filter(session=check_in, active=True).first()
    assert booking is not None
    row = _row(check_in, "checkin_call", "email", staff=booking.user)
    night = check_in.start - timedelta(hours=11)  # 23:00 local
    assert hold_reason(row, night) is None

    User.objects.filter(pk=booking.user_id).update(email="")
    row.refresh_from_db()
    held = hold_reason(row, night)
    assert held is not None and "has no email address" in held.reason

    User.objects.filter(pk=booking.user_id).update(email="t@example.org", is_active=False)
    row.refresh_from_db()
    held = hold_reason(row, night)
    assert held is not None and "account is switched off" in held.reason

    User.objects.filter(pk=booking.user_id).update(is_active=True)
    StaffBooking.objects.filter(pk=booking.pk).update(active=False)
    row.refresh_from_db()
    assert hold_reason(row, night) == messages.Hold(
        "skipped", f"{booking.user.username} is no longer booked on this session."
    )


def _escalation(session: ScheduledSession, user: User, concern: CheckInOutcome | None) -> Reminder:
    cause = f"concern-{concern.pk}" if concern else "overdue"
    key = f"{session.uid}/escalation/{cause}/u{user.pk}"
    planned = Reminder.objects.filter(idempotency_key=key).first()
    if planned is not None:  # the planner's (overdue) or the check-in service's (concern) row
        return planned
    row = _row(session, "checkin_escalation", "email", staff=user)
    row.idempotency_key = key
    row.due_at = session.start + timedelta(hours=4)
    # the overdue one was planned at enrolment already: this row takes its key
    Reminder.objects.filter(idempotency_key=row.idempotency_key).exclude(pk=row.pk).delete()
    row.save()
    return row


def test_an_overdue_check_in_escalates_unless_someone_was_reached(
    mapp: Course, coordinator: User
) -> None:
    check_in = mapp.sessions.filter(kind="phone_checkin").first()
    assert check_in is not None
    therapist = StaffBooking.objects.filter(session=check_in).first().user  # type: ignore[union-attr]
    row = _escalation(check_in, coordinator, None)
    after = check_in.start + timedelta(hours=4, minutes=1)  # escalations ignore "too late"
    assert hold_reason(row, after) is None

    CheckInOutcome.objects.create(session=check_in, outcome="no_answer", recorded_by=therapist)
    assert hold_reason(row, after) is None  # still no one reached

    CheckInOutcome.objects.create(session=check_in, outcome="reached", recorded_by=therapist)
    held = hold_reason(row, after)
    assert held is not None and held.status == "skipped"
    assert held.reason.startswith("The participant was reached (recorded ")


def test_a_concern_always_escalates(mapp: Course, coordinator: User) -> None:
    check_in = mapp.sessions.filter(kind="phone_checkin").first()
    assert check_in is not None
    therapist = StaffBooking.objects.filter(session=check_in).first().user  # type: ignore[union-attr]
    concern = CheckInOutcome.objects.create(
        session=check_in, outcome="concern", recorded_by=therapist
    )
    CheckInOutcome.objects.create(session=check_in, outcome="reached", recorded_by=therapist)
    ScheduledSession.objects.filter(pk=check_in.pk).update(status="completed")
    row = _escalation(check_in, coordinator, concern)
    assert hold_reason(row, check_in.start + timedelta(minutes=20)) is None
    # the overdue one, though, knows the coordinators were told
    overdue = _escalation(check_in, coordinator, None)
    CheckInOutcome.objects.create(session=check_in, outcome="concern", recorded_by=therapist)
    held = hold_reason(overdue, check_in.start + timedelta(hours=5))
    assert held is not None and "the coordinators were told then" in held.reason


def test_an_escalation_follows_a_moved_check_in_and_its_coordinators(
    mapp: Course, coordinator: User, site: Site
) -> None:
    check_in = mapp.sessions.filter(kind="phone_checkin").first()
    assert check_in is not None
    row = _escalation(check_in, coordinator, None)
    later = check_in.start + timedelta(hours=3)
    ScheduledSession.objects.filter(pk=check_in.pk).update(
        start=later, end=later + timedelta(minutes=15)
    )
    row.refresh_from_db()
    held = hold_reason(row, row.due_at)
    assert held is not None and held.status == "pending"
    assert held.due_at == later + timedelta(hours=4)

    ScheduledSession.objects.filter(pk=check_in.pk).update(status="cancelled")
    row.refresh_from_db()
    assert hold_reason(row, later + timedelta(hours=5)) == messages.Hold(
        "skipped", "The check-in was cancelled."
    )

    ScheduledSession.objects.filter(pk=check_in.pk).update(status="planned")
    coordinator.staff_profile.sites.clear()
    row.refresh_from_db()
    assert hold_reason(row, later + timedelta(hours=5)) == messages.Hold(
        "skipped", f"rs-coordinator is no longer a coordinator at {site.name}."
    )
