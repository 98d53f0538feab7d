"""Staff pages: thin views that read through selectors (scoped to the user's sites) and render
templates. Another site's objects are a 404."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import TypeVar
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from protocol.models import Protocol
from scheduling import access, checkins, selectors, services, site_grid, timeline
from scheduling.forms import (
    CalendarForm,
    CheckInForm,
    EndingForm,
    EnrolForm,
    RebookForm,
    RescheduleForm,
    StatusForm,
)
from scheduling.models import (
    CheckInOutcome,
    Course,
    Dyad,
    Participant,
    Reminder,
    ScheduledSession,
    Site,
    SiteClosure,
)
from scheduling.planning import people_time

#: what placing a session at a new time answers: a move's or a rebooking's result
PlacedT = TypeVar("PlacedT", services.RescheduleResult, services.RebookResult)

#: rows per page of a list
PAGE_SIZE = 50
#: the participants list's query parameters: the selector's argument and the longest value
LIST_FILTERS = {
    "status": ("status", 20),
    "protocol": ("protocol", 50),
    "site": ("site", 50),
    "next": ("next_session", 4),
}
#: the participants search (a study code) lives in the session, never in a URL: addresses end
#: up in access logs, browser history and Referer headers
SEARCH_KEY, SEARCH_LIMIT = "participants_search", 30


def landing(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("today")
    return render(request, "landing.html")


def _site_of(request: HttpRequest) -> tuple[Site, list[Site]]:
    """The site asked for in ``?site=`` (else the user's first), and every site the user may
    see; a site the user may not see is a 404."""
    sites = list(selectors.sites_for(request.user))
    if not sites:
        raise Http404("You do not work at any site yet.")
    wanted = request.GET.get("site")
    site = next((s for s in sites if s.slug == wanted), None) if wanted else sites[0]
    if site is None:
        raise Http404("No such site.")
    return site, sites


@login_required
def today(request: HttpRequest) -> HttpResponse:
    """The site's sessions today and tomorrow in local time, and what needs attention."""
    site, sites = _site_of(request)
    now = timezone.now()
    local_today = now.astimezone(ZoneInfo(site.timezone)).date()
    begin, end = selectors.day_bounds(site, local_today, 2)
    sessions = list(selectors.board_sessions(request.user, site, begin, end))
    days = [
        (day, [s for s in sessions if _local(s.start, site).date() == day and s.start >= begin])
        for day in (local_today, local_today + timedelta(days=1))
    ]
    overnight_in = [s for s in sessions if s.start < begin]
    # each row links to its session, and to its participant where the policy lets the user
    # see them (never for a blinded assessor): one query for the whole board
    shown = {p.pk for s in sessions for p in (s.course.participant, s.course.partner) if p}
    linkable = set(
        selectors.visible_participants(request.user)
        .filter(pk__in=shown)
        .values_list("pk", flat=True)
    )
    context = {
        "nav": "today",
        "site": site,
        "sites": sites,
        "days": days,
        "overnight_in": overnight_in,
        "linkable": linkable,
        # hundreds of rows on a busy day: reverse each address once, not per row
        "session_url": reverse("session", kwargs={"pk": 1}).removesuffix("1/"),
        "participant_url": reverse("participant", kwargs={"pk": 1}).removesuffix("1/"),
        "attention": selectors.attention_items(request.user, site, now),
        "zone": site.timezone,
        "checkins": _checkin_rows(request, site, *selectors.day_bounds(site, local_today, 1)),
        "may_record": access.allows(request.user, access.Action.RECORD_CHECKIN, ScheduledSession),
    }
    return render(request, "scheduling/today.html", context)


def _checkin_rows(
    request: HttpRequest, site: Site, begin: datetime, end: datetime
) -> list[ScheduledSession]:
    """Today's phone check-ins (and earlier unanswered ones), each with its outcome form."""
    rows = selectors.today_checkins(request.user, site, begin, end)
    for row in rows:
        row.form = CheckInForm(session_id=row.pk)  # type: ignore[attr-defined]
    return rows


@login_required
@require_POST
def session_checkin(request: HttpRequest, pk: int) -> HttpResponse:
    """Record what a phone check-in came to (Today's form; htmx swaps the call's row, a plain
    post returns to Today). A concern emails the site's coordinators at once."""
    try:
        found = selectors.session_page(request.user, pk)
    except ScheduledSession.DoesNotExist:
        raise Http404("No such session.") from None
    if found.kind != selectors.PHONE_CHECKIN:
        raise Http404("Outcomes are recorded for phone check-ins only.")
    if not access.can(request.user, access.Action.RECORD_CHECKIN, found):
        raise PermissionDenied(
            "Only the therapist booked on this check-in, or the site's coordinators and "
            "administrators, record its outcome."
        )
    site = found.course.participant.site
    form = CheckInForm(request.POST, session_id=found.pk)
    recorded = None
    if form.is_valid():
        try:
            recorded = checkins.checkin_record(
                session=found,
                outcome=form.cleaned_data["outcome"],
                note=form.cleaned_data["note"],
                by=request.user,
            )
        except services.SchedulingError as exc:
            _add_errors(form, exc.errors)
    if recorded is not None:
        said = _recorded_message(found, recorded)
        if not request.headers.get("HX-Request"):
            messages.success(request, said)
            return redirect(reverse("today") + "?" + urlencode({"site": site.slug}))
        form = CheckInForm(session_id=found.pk)
    row = selectors.today_checkin(request.user, found.pk)
    row.form = form  # type: ignore[attr-defined]
    context = {
        "nav": "today",
        "c": row,
        "site": site,
        "zone": site.timezone,
        "may_record": True,
        "recorded": _recorded_message(found, recorded) if recorded is not None else "",
    }
    return render(request, "scheduling/checkin.html", context)


def _checkin_form_row(request: HttpRequest, session: ScheduledSession) -> ScheduledSession | None:
    """A phone check-in's outcome form on its own page, for whoever may record it (the
    attention list on Today links here)."""
    if session.kind != selectors.PHONE_CHECKIN or session.superseded:
        return None
    if session.status == ScheduledSession.Status.CANCELLED:
        return None
    if not access.can(request.user, access.Action.RECORD_CHECKIN, session):
        return None
    row = selectors.today_checkin(request.user, session.pk)
    row.form = CheckInForm(session_id=session.pk)  # type: ignore[attr-defined]
    return row


def _recorded_message(session: ScheduledSession, row: CheckInOutcome) -> str:
    code = session.course.participant.code
    said = f"Recorded for {code}'s check-in: {row.get_outcome_display()}."
    if row.outcome == row.Outcome.CONCERN:
        said += " The site's coordinators are being emailed."
    return said


@login_required
def site_calendar(request: HttpRequest) -> HttpResponse:
    """A week or a month at a site, by room or by therapist, in the site's zone."""
    site, sites = _site_of(request)
    form = CalendarForm(request.GET or None)
    form.is_valid()  # an invalid field shows its error; the valid ones still apply
    chosen = getattr(form, "cleaned_data", {})
    view = chosen.get("view") or "week"
    by = chosen.get("by") or "room"
    local_today = _local(timezone.now(), site).date()
    shown: date = chosen.get("date") or local_today
    days = site_grid.week_of(shown) if view == "week" else site_grid.month_of(shown)
    begin, end = selectors.day_bounds(site, days[0], len(days))
    rows = site_grid.build(
        days,
        site.timezone,
        selectors.calendar_rows(site, by, request.user),
        selectors.calendar_bookings(request.user, site, by, begin, end),
    )
    closed = selectors.closed_days(site, days[0], days[-1])
    # each day's column with why it is closed ("" when open), the same for every row
    columns = [(day, closed.get(day, "")) for day in days]
    grid = [(row, list(zip(row.days, columns, strict=True))) for row in rows]
    if view == "week":
        earlier, later = days[0] - timedelta(days=7), days[0] + timedelta(days=7)
    else:
        earlier, later = (days[0] - timedelta(days=1)).replace(day=1), days[-1] + timedelta(days=1)

    def link(day: date) -> str:
        return "?" + urlencode({"site": site.slug, "view": view, "by": by, "date": day})

    context = {
        "nav": "calendar",
        # a week holds hundreds of bookings: reverse the session URL once, not per booking
        "session_url": reverse("session", kwargs={"pk": 1}).removesuffix("1/"),
        "site": site,
        # the site's CalDAV page, for those who set the site up (the site is one of theirs)
        "may_set_up_site": access.allows(request.user, access.Action.CHANGE, Site),
        "sites": sites,
        "form": form,
        "view": view,
        "by": by,
        "days": days,
        "rows": rows,
        "columns": columns,
        "grid": grid,
        "today": local_today,
        "earlier": link(earlier),
        "later": link(later),
        "current": link(local_today),
        "zone": site.timezone,
        # the set-up links follow the access policy (not Django's permission flags)
        "setup": {
            "view": access.allows(request.user, access.Action.VIEW, SiteClosure),
            "change": access.can(request.user, access.Action.CHANGE, site),
        },
    }
    return render(request, "scheduling/calendar.html", context)


def _param(request: HttpRequest, name: str, limit: int, *, posted: bool = False) -> str:
    """A query-string (or ``posted`` form) filter as text the database accepts (no NUL), at
    most ``limit`` long; a value that matches nothing simply finds nothing."""
    data = request.POST if posted else request.GET
    return data.get(name, "").replace("\x00", "").strip()[:limit]


def _participants_search(request: HttpRequest) -> HttpResponse:
    """Post/Redirect/Get: the study code searched for is kept in the session and the list is
    shown at an address without it; the other filters (no PHI) stay in the query string."""
    search = "" if "clear" in request.POST else _param(request, "q", SEARCH_LIMIT, posted=True)
    if search:
        request.session[SEARCH_KEY] = search
    else:
        request.session.pop(SEARCH_KEY, None)
    filters = {
        name: _param(request, name, limit, posted=True) for name, (_, limit) in LIST_FILTERS.items()
    }
    query = urlencode({name: value for name, value in filters.items() if value})
    return redirect(reverse("participants") + (f"?{query}" if query else ""))


def _local(moment: datetime, site: Site) -> datetime:
    return moment.astimezone(ZoneInfo(site.timezone))


@login_required
def participants(request: HttpRequest) -> HttpResponse:
    """Participants at the user's sites: search by study code (posted), filter by status and
    protocol."""
    if request.method == "POST":
        return _participants_search(request)
    filters = {arg: _param(request, name, limit) for name, (arg, limit) in LIST_FILTERS.items()}
    filters["search"] = str(request.session.get(SEARCH_KEY, ""))
    if filters["next_session"] not in dict(selectors.NEXT_SESSION_CHOICES):
        filters["next_session"] = ""  # only the offered choices: "²".isdigit() is True
    rows = selectors.participants_list(request.user, now=timezone.now(), **filters)
    page = Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page"))  # bad numbers: 1 or last
    query = urlencode(
        {name: filters[arg] for name, (arg, _) in LIST_FILTERS.items() if filters[arg]}
    )
    context = {
        "nav": "participants",
        "rows": page.object_list,
        "page": page,
        "query": query,
        "filters": filters,
        "statuses": Participant.Status.choices,
        "protocols": Protocol.objects.order_by("slug").values_list("slug", flat=True),
        "can_enrol": access.allows(request.user, access.Action.ENROL, Participant),
        "sites": selectors.sites_for(request.user),
        "next_choices": selectors.NEXT_SESSION_CHOICES,
    }
    return render(request, "scheduling/participants.html", context)


@login_required
def participant_new(request: HttpRequest) -> HttpResponse:
    """Enrol a participant: Preview plans the course against the site's calendar and bookings
    and shows it with anything worth a look; Confirm books exactly the previewed plan (if the
    bookings changed meanwhile, the new plan is shown instead)."""
    if not access.allows(request.user, access.Action.ENROL, Participant):
        raise Http404("Only coordinators and administrators enrol participants.")
    choices = selectors.enrol_choices(request.user)
    form = EnrolForm(request.POST or None, initial={"preferred_channel": "none"}, **choices)
    preview, changed = None, False
    action = request.POST.get("action")
    if request.method == "POST" and action in ("preview", "confirm") and form.is_valid():
        site = selectors.sites_for(request.user).get(slug=form.cleaned_data["site"])
        dyad = _dyad(request, form.cleaned_data["dyad"])
        arguments = {
            "site": site,
            "code": form.cleaned_data["code"],
            "protocol_slug": form.cleaned_data["protocol"],
            "start_date": form.cleaned_data["start_date"],
            "dyad": dyad,
            "partner_code": form.cleaned_data["partner"] or None,
            "back_entry_reason": form.given_back_entry_reason(),
        }
        try:
            plan = services.enrolment_preview(**arguments, suggest_starts=True)
            digest = _digest(plan)
            changed = action == "confirm" and request.POST.get("digest") != digest
            if action == "confirm" and not changed:
                course = services.participant_enrol(
                    **arguments, by=_staff(request), contact=form.contact()
                )
                messages.success(request, _enrolled_message(course, site))
                return redirect("participant", pk=course.participant_id)
            preview = _preview_rows(plan, site, digest)
        except services.SchedulingError as exc:
            _add_errors(form, exc.errors)
        except services.BookingConflict as exc:
            form.add_error(None, f"{exc} Preview again.")
    context = {"nav": "participants", "form": form, "preview": preview, "changed": changed}
    return render(request, "scheduling/enrol.html", context)


def _enrolled_message(course: Course, site: Site) -> str:
    """What confirming did, in the site's time: "Enrolled P-014: 24 sessions booked, first on
    Mon 1 Mar 2027 09:00 EST"."""
    sessions = list(course.sessions.order_by("start").values_list("start", flat=True))
    codes = " and ".join(p.code for p in (course.participant, course.partner) if p is not None)
    count = f"{len(sessions)} session{'s' * (len(sessions) != 1)} booked"
    if not sessions:
        return f"Enrolled {codes}: {count}."
    return f"Enrolled {codes}: {count}, first on {_when(sessions[0], site)}."


def _when(moment: datetime, site: Site) -> str:
    local = _local(moment, site)
    return f"{local:%a} {local.day} {local:%b %Y %H:%M} {local.tzname()}"


def _dyad(request: HttpRequest, pk: int | None) -> Dyad | None:
    if pk is None:
        return None
    return selectors.scoped(Dyad.objects.all(), request.user).filter(pk=pk).first()


def _digest(plan: services.EnrolmentPlan) -> str:
    """A fingerprint of what a plan would book, carried from the preview to the confirmation."""
    parts = [f"{plan.dyad.pk}"] + [
        f"{s.key}@{s.start.isoformat()}/{s.room}/{','.join(map(str, s.staff))}"
        for s in plan.planned.sessions
    ]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def _preview_rows(plan: services.EnrolmentPlan, site: Site, digest: str) -> dict[str, object]:
    rooms = selectors.room_names(site)
    notes = plan.notes
    note_of = {s.key: note for s, note in notes}
    zone = ZoneInfo(site.timezone)
    last = plan.planned.last_session()
    return {
        "digest": digest,
        "dyad": plan.dyad,
        "version": plan.version,
        "zone": site.timezone,
        "span_weeks": plan.planned.therapy_span_days() / 7,
        "therapy_ends": plan.planned.therapy_ends(),
        "last": last.start.astimezone(zone) if last else None,
        "last_title": last.title if last else "",
        "notes": notes,
        "sessions": [
            {
                "title": s.title,
                "kind": s.kind.value,
                "start": s.start.astimezone(zone),
                "end": s.end.astimezone(zone),
                "overnight": s.overnight,
                "room": rooms.get(s.room, "") if s.room else "",
                "window_start": s.window_start,
                "window_end": s.window_end,
                "note": note_of.get(s.key, ""),
                "reason": s.reason,
            }
            for s in plan.planned.sessions
        ],
    }


@login_required
def participant(request: HttpRequest, pk: int) -> HttpResponse:
    """One participant: the course timeline and every session with status and deviations; the
    partner of a couple; withdrawing the participant or ending a course early (a preview of
    what it cancels, then apply)."""
    found = get_object_or_404(
        selectors.visible_participants(request.user).select_related("site", "partner"), pk=pk
    )
    services.access_log_record(
        user=request.user, participant=found, door="page", route="participant"
    )
    may_end = access.can(request.user, access.Action.END, found)
    action = request.POST.get("action") if request.method == "POST" else None
    ending_form, ending, ending_course = EndingForm(), None, None
    if action in ("withdraw-preview", "withdraw", "end-preview", "end"):
        if not may_end:
            raise PermissionDenied("Only coordinators and administrators withdraw or end.")
        ending_form = EndingForm(request.POST)
        if action.startswith("end"):
            ending_course = _participant_course(request, found)
        if ending_form.is_valid():
            ending = _end(request, found, ending_course, ending_form, apply="-" not in action)
            if ending is not None and ending.applied:
                return redirect("participant", pk=found.pk)
    zone = ZoneInfo(found.site.timezone)
    now = timezone.now()
    today = now.astimezone(zone).date()
    courses = []
    for course in selectors.participant_courses(found, request.user):
        sessions = sorted(course.sessions.all(), key=lambda s: (s.start, s.superseded))
        picture = timeline.build(
            [
                timeline.TimelineSession(
                    key=s.key,
                    title=s.title,
                    kind=s.kind,
                    day=s.start.astimezone(zone).date(),
                    window_start=s.window_start,
                    window_end=s.window_end,
                    overnight=s.overnight,
                    status=s.status,
                )
                for s in sessions
                if not s.superseded
            ],
            today,
        )
        courses.append({"course": course, "sessions": sessions, "timeline": picture})
    partner = found.partner
    may_see_reminders = access.allows(request.user, access.Action.VIEW, Reminder)
    context = {
        "nav": "participants",
        "participant": found,
        "partner": partner if partner and access.can(request.user, "view", partner) else None,
        "next_session": selectors.next_session_start(found, now),
        "courses": courses,
        "zone": found.site.timezone,
        "may_end": may_end,
        "may_export": access.can(request.user, access.Action.EXPORT, found),
        "ending_form": ending_form,
        "ending": ending,
        "ending_action": action.removesuffix("-preview") if action else None,
        "ending_course": ending_course,
        "may_see_reminders": may_see_reminders,
        "may_issue_feed": access.can(request.user, access.Action.CHANGE, found),
        "reminders": selectors.reminders_list(request.user, participant=found)
        if may_see_reminders
        else [],
    }
    return render(request, "scheduling/participant.html", context)


def _participant_course(request: HttpRequest, found: Participant) -> Course:
    """The course named in the posted form, among the participant's that the user may end."""
    course_id = _param(request, "course", 18, posted=True)
    courses = access.scope(Course.objects.all(), request.user, access.Action.END)
    course = (
        courses.filter(Q(participant=found) | Q(partner=found), pk=int(course_id)).first()
        if re.fullmatch(r"[0-9]{1,18}", course_id)  # not str.isdigit(): "²" is a digit there
        else None
    )
    if course is None:
        raise Http404("No such course.")
    return course


def _end(
    request: HttpRequest,
    found: Participant,
    course: Course | None,
    form: EndingForm,
    *,
    apply: bool,
) -> services.Ending | None:
    try:
        if course is not None:
            return services.course_end(
                course=course,
                reason=form.cleaned_data["reason"],
                by=_staff(request),
                dry_run=not apply,
            )
        return services.participant_withdraw(
            participant=found,
            reason=form.cleaned_data["reason"],
            by=_staff(request),
            dry_run=not apply,
        )
    except services.SchedulingError as exc:
        _add_errors(form, exc.errors)
    return None


@login_required
def participant_schedule(request: HttpRequest, pk: int) -> HttpResponse:
    """The participant's schedule to print and hand over: dates, times, place and how to
    prepare, in the site's zone. The study code only; no protocol or drug name."""
    try:
        found, sessions = selectors.participant_schedule(request.user, pk, timezone.now())
    except Participant.DoesNotExist:
        raise Http404("No such participant.") from None
    services.access_log_record(
        user=request.user, participant=found, door="print", route="participant-schedule"
    )
    context = {"participant": found, "site": found.site, "sessions": sessions}
    return render(request, "scheduling/schedule_print.html", context)


@login_required
def session_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """A session: details, dose plan, reschedule with a preview, status changes with a preview
    of what happens to the sessions anchored on it, rebooking a cancelled or missed one,
    deviations and its audit history."""
    try:
        found = selectors.session_page(request.user, pk)
    except ScheduledSession.DoesNotExist:
        raise Http404("No such session.") from None
    services.access_log_record(
        user=request.user, participant=found.course.participant, door="page", route="session"
    )
    site = found.course.participant.site
    zone = site.timezone
    local = found.start.astimezone(ZoneInfo(zone))
    allowed = site.allow_out_of_hours_moves
    move = RescheduleForm(
        initial={"date": local.date(), "time": local.time()},
        zone=zone,
        outside_hours_allowed=allowed,
    )
    rebook = RebookForm(
        initial={"date": local.date(), "time": local.time()},
        zone=zone,
        outside_hours_allowed=allowed,
    )
    status = StatusForm()
    preview = status_preview = rebook_preview = None
    may = {
        "reschedule": access.can(request.user, access.Action.RESCHEDULE, found),
        "status": access.can(request.user, access.Action.SET_STATUS, found),
        "participant": access.can(request.user, access.Action.VIEW, found.course.participant),
        # the outbox and check-in notes: never for a blinded assessor (the policy says who)
        "reminders": access.allows(request.user, access.Action.VIEW, Reminder),
    }
    action = request.POST.get("action") if request.method == "POST" else None
    if action in ("preview", "apply", "rebook-preview", "rebook") and not may["reschedule"]:
        raise PermissionDenied("You may not move this session.")
    if action in ("status", "status-preview") and not may["status"]:
        raise PermissionDenied("You may not change this session's status.")
    if action in ("preview", "apply"):
        move = RescheduleForm(request.POST, zone=zone, outside_hours_allowed=allowed)
        if move.is_valid():
            preview = _place(
                request, found, move, apply=action == "apply", service=services.session_reschedule
            )
            if preview is not None and preview.applied:
                messages.success(request, _moved_message(found, preview))
                return redirect("session", pk=found.pk)
    elif action in ("status", "status-preview"):
        status = StatusForm(request.POST)
        if status.is_valid():
            status_preview = _change_status(request, found, status, apply=action == "status")
            if status_preview is not None and status_preview.applied:
                messages.success(request, _status_message(status_preview))
                return redirect("session", pk=found.pk)
    elif action in ("rebook-preview", "rebook"):
        rebook = RebookForm(request.POST, zone=zone, outside_hours_allowed=allowed)
        if rebook.is_valid():
            rebook_preview = _place(
                request, found, rebook, apply=action == "rebook", service=services.session_rebook
            )
            if rebook_preview is not None and rebook_preview.applied:
                messages.success(request, _rebooked_message(rebook_preview))
                return redirect("session", pk=rebook_preview.session.pk)
    context = {
        "nav": "participants",
        "s": found,
        "zone": zone,
        "template": selectors.session_template(found, request.user),
        "may": may,
        "move": move,
        "status_form": status,
        "status_preview": status_preview,
        "rebook_form": rebook,
        "rebook_preview": rebook_preview,
        "closed_anchor": selectors.closed_anchor(found),
        "replaced_by": getattr(found, "replaced_by", None),
        "preview": preview,
        "changes": _move_rows(preview, found) if preview is not None else [],
        "history": found.history.select_related("history_user").order_by("-history_date")[:50],
        "reminders": (
            selectors.reminders_list(request.user, session=found) if may["reminders"] else []
        ),
        "checkin_outcomes": selectors.checkin_outcomes(request.user, found),
        "checkin": _checkin_form_row(request, found),
    }
    return render(request, "scheduling/session.html", context)


def _status_message(change: services.StatusChange) -> str:
    """What a status change did: "Marked dosing-1 cancelled; cancelled with it: 6 sessions;
    left planned until it is rebooked: 5 sessions"."""
    said = [f"Marked {change.session.key} {change.status}"]
    for outcome in services.Outcome:
        count = len([c for c in change.consequences if c.outcome is outcome])
        if count:
            said.append(f"{outcome.label}: {count} session{'s' * (count != 1)}")
    if change.course_status:
        said.append(f"the course is now {change.course_status}")
    return "; ".join(said) + "."


def _rebooked_message(result: services.RebookResult) -> str:
    """What a rebooking did: "Rebooked dosing-1 on Tue 2 Mar 2027 09:00 EST; 4 sessions
    re-planned"."""
    session = result.session
    when = people_time(session.start, ZoneInfo(session.course.participant.site.timezone))
    others = len(result.rebooked) - 1 + len(result.moved)
    return (
        f"Rebooked {session.key} on {when}; "
        f"{others} other session{'s' * (others != 1)} booked again or re-planned."
    )


def _change_status(
    request: HttpRequest, session: ScheduledSession, form: StatusForm, *, apply: bool
) -> services.StatusChange | None:
    try:
        return services.session_change_status(
            session=session,
            status=form.cleaned_data["status"],
            reason=form.cleaned_data["reason"],
            by=_staff(request),
            dry_run=not apply,
        )
    except services.SchedulingError as exc:
        _add_errors(form, exc.errors)
    return None


def _move_rows(
    result: services.RescheduleResult, session: ScheduledSession
) -> list[dict[str, object]]:
    """Each moving session with its times, room and staff before and after, by name."""
    site = session.course.participant.site
    rooms = selectors.room_names(site)
    people = selectors.staff_names({p for m in result.moved for p in (*m.old_staff, *m.staff)})
    zone = ZoneInfo(site.timezone)
    return [
        {
            "title": m.session.title,
            "old_start": m.old_start.astimezone(zone),
            "new_start": m.new_start.astimezone(zone),
            "old_room": rooms.get(m.old_room, "") if m.old_room else "",
            "room": rooms.get(m.room, "") if m.room else "",
            "added": [people.get(p, "") for p in m.staff_added],
            "removed": [people.get(p, "") for p in m.staff_removed],
        }
        for m in result.moved
    ]


def _moved_message(session: ScheduledSession, result: services.RescheduleResult) -> str:
    """What applying did, in one sentence: "Moved dosing-1 to Tue 2 Mar 2027 09:00 EST;
    3 other sessions re-planned"."""
    zone = ZoneInfo(session.course.participant.site.timezone)
    main = next((m for m in result.moved if m.session.pk == session.pk), None)
    others = len([m for m in result.moved if m.session.pk != session.pk])
    done = (
        f"Moved {session.key} to {people_time(main.new_start, zone)}"
        if main is not None
        else f"{session.key} stays where it is"
    )
    replanned = f"{others} other session{'s' * (others != 1)} re-planned"
    recorded = "".join(f"; deviation recorded: {d.get_kind_display()}" for d in result.deviations)
    return f"{done}; {replanned}{recorded}."


def _place(
    request: HttpRequest,
    session: ScheduledSession,
    form: RescheduleForm,
    *,
    apply: bool,
    service: Callable[..., PlacedT],
) -> PlacedT | None:
    """A session at a new time, through ``service``: a move (``session_reschedule``) or a
    rebooking (``session_rebook``); a refusal goes onto the form."""
    try:
        return service(
            session=session,
            start=form.start(),
            reason=form.cleaned_data["reason"],
            outside_hours=form.cleaned_data.get("outside_hours", False),
            by=_staff(request),
            dry_run=not apply,
        )
    except services.SchedulingError as exc:
        _add_errors(form, exc.errors)
    except services.BookingConflict as exc:
        form.add_error(None, str(exc))
    return None


def _add_errors(form: forms.Form, errors: dict[str, list[str]]) -> None:
    for name, said in errors.items():
        for message in said:
            form.add_error(name if name in form.fields else None, message)


def _staff(request: HttpRequest) -> User | None:
    return request.user if isinstance(request.user, User) else None
