"""Calendar downloads (.ics) from the pages, and the user's own page that links theirs: thin
views over ``scheduling.calendars.export``, which asks the access policy (another site's
participant, room, site or staff member is a 404, like everywhere else).

A calendar holds study codes and times of treatment: it is never cached on the way (``private,
no-store``), and its file name says only what kind of calendar it is and an id or a slug."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import ObjectDoesNotExist
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe

from scheduling import access, selectors, services
from scheduling.calendars import Export, Scope, export
from scheduling.models import Participant, StaffProfile

CONTENT_TYPE = "text/calendar; charset=utf-8"


def ics_response(found: Export) -> HttpResponse:
    """The calendar as a download, for the pages and the API alike."""
    response = HttpResponse(found.data, content_type=CONTENT_TYPE)
    response["Content-Disposition"] = f'attachment; filename="{found.filename}"'
    response["Cache-Control"] = "private, no-store"  # PHI: not in any shared or disk cache
    return response


def exported(request: HttpRequest, scope: Scope, pk: int | None, route: str) -> Export:
    """The export the user asked for (a 404 for one they may not see), with a participant's
    read written to the access log like any other door to their record."""
    try:
        found = export(request.user, scope, pk)
    except ObjectDoesNotExist:
        raise Http404("No such calendar among those you may see.") from None
    if found.participant is not None:
        services.access_log_record(
            user=request.user, participant=found.participant, door="export", route=route
        )
    return found


@login_required
@require_safe
def participant_calendar(request: HttpRequest, pk: int) -> HttpResponse:
    """One participant's course as they read it (to hand to them: no study code, no room's
    internal name; how to prepare)."""
    return ics_response(exported(request, Scope.PARTICIPANT, pk, "calendar-participant"))


@login_required
@require_safe
def staff_calendar(request: HttpRequest, pk: int) -> HttpResponse:
    """The sessions a staff member (by user id) is booked on, of those the user may see."""
    return ics_response(exported(request, Scope.THERAPIST, pk, "calendar-staff"))


@login_required
@require_safe
def room_calendar(request: HttpRequest, pk: int) -> HttpResponse:
    """The sessions held in a room, of those the user may see."""
    return ics_response(exported(request, Scope.ROOM, pk, "calendar-room"))


@login_required
@require_safe
def site_calendar(request: HttpRequest, pk: int) -> HttpResponse:
    """The sessions of a site, of those the user may see."""
    return ics_response(exported(request, Scope.SITE, pk, "calendar-site"))


@login_required
@require_safe
def my_calendar(request: HttpRequest) -> HttpResponse:
    """The sessions the signed-in staff member is booked on."""
    return ics_response(exported(request, Scope.MINE, None, "calendar-mine"))


@login_required
@require_safe
def me(request: HttpRequest) -> HttpResponse:
    """The signed-in user's own page: their role, their sites and their calendar."""
    role = access.role_of(request.user)
    context = {
        "nav": "me",
        "role": role,
        "role_label": StaffProfile.Role(role).label if role else "",
        "sites": selectors.sites_for(request.user),
        "sees_participants": access.allows(request.user, access.Action.VIEW, Participant),
    }
    return render(request, "scheduling/me.html", context)
