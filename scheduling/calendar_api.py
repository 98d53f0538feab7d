# mypy: allow-subclassing-any
# (rest_framework has no type stubs here, so its classes are Any to mypy.)
"""The calendar exports through the REST API: the same calendars as the pages' downloads
(``scheduling.calendars.export``), signed in as every API call is (a token or a session), as
``text/calendar``. Errors stay JSON like the rest of the API, whatever the client accepts: a
calendar client that asks only for text/calendar gets its 401 or 404 in JSON rather than a
406 that says nothing about the cause."""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import exceptions
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.request import Request
from rest_framework.views import APIView

from config.api import ApiSchema
from scheduling.calendar_views import exported, ics_response
from scheduling.calendars import Scope


class JsonErrorsNegotiation(DefaultContentNegotiation):
    """The success answer is the calendar itself; anything rendered (an error) is JSON."""

    def select_renderer(self, request: Request, renderers: list[Any], format_suffix: Any = None):  # type: ignore[no-untyped-def]
        try:
            return super().select_renderer(request, renderers, format_suffix)
        except exceptions.NotAcceptable:
            return renderers[0], renderers[0].media_type


CALENDAR = OpenApiResponse(
    OpenApiTypes.STR,
    description="An iCalendar file (RFC 5545), one VEVENT per session: the session's stable "
    "UID, SEQUENCE up on every change of time, place or status, STATUS:CANCELLED kept, times "
    "in the site's zone with its VTIMEZONE. Sent as an attachment, never cached.",
)


class CalendarApi(APIView):
    scope: Scope
    route: str
    schema = ApiSchema()
    content_negotiation_class = JsonErrorsNegotiation

    def get(self, request: Request, pk: int | None = None) -> HttpResponse:
        return ics_response(exported(request, self.scope, pk, self.route))


def _documented(description: str, operation_id: str) -> Any:
    # the path's id is documented from its converter, as on every other route
    return extend_schema_view(
        get=extend_schema(
            tags=["calendars"],
            operation_id=operation_id,
            description=description,
            responses={(200, "text/calendar"): CALENDAR},
        )
    )


@_documented(
    "One participant's course as the participant reads it, to give to them: each session "
    "named in plain words with how to prepare, never the study code or a room's internal "
    "name; a couple's shared sessions too (the read is logged).",
    "participant_calendar",
)
class ParticipantCalendarApi(CalendarApi):
    scope, route = Scope.PARTICIPANT, "api:calendar-participant"


@_documented(
    "The sessions a staff member (by user id) is booked on, of those you may see: study "
    "code and kind of session, room and site.",
    "staff_calendar",
)
class StaffCalendarApi(CalendarApi):
    scope, route = Scope.THERAPIST, "api:calendar-staff"


@_documented("The sessions held in a room, of those you may see.", "room_calendar")
class RoomCalendarApi(CalendarApi):
    scope, route = Scope.ROOM, "api:calendar-room"


@_documented("The sessions of a site, of those you may see.", "site_calendar")
class SiteCalendarApi(CalendarApi):
    scope, route = Scope.SITE, "api:calendar-site"


@_documented("The sessions you are booked on.", "my_calendar")
class MyCalendarApi(CalendarApi):
    scope, route = Scope.MINE, "api:calendar-mine"
