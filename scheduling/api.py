# mypy: allow-subclassing-any
# (rest_framework has no type stubs here, so its classes are Any to mypy.)
"""The REST API of scheduling: thin views that read through selectors and write through
services, each with its input serializer nested in it (HackSoft style).

Access: every fetch goes through ``selectors.scoped``, so another site's objects answer 404 and
never appear in lists; a site named in input that the user does not work at is a field error
that does not say whether it exists."""

from __future__ import annotations

import logging
from datetime import date, datetime, time, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Model, Q, QuerySet
from django.shortcuts import get_object_or_404
from django.utils.dateparse import parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    extend_schema_serializer,
    inline_serializer,
)
from rest_framework import exceptions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import as_serializer_error
from rest_framework.views import APIView, set_rollback
from rest_framework.views import exception_handler as drf_exception_handler

from scheduling import selectors, services
from scheduling.models import Dyad, Participant, Room, ScheduledSession, Site, StaffBooking
from scheduling.selectors import scoped
from scheduling.serializers import (
    DyadOutputSerializer,
    ParticipantOutputSerializer,
    RescheduleOutputSerializer,
    RoomOutputSerializer,
    SessionDetailOutputSerializer,
    SessionOutputSerializer,
    SiteOutputSerializer,
    StaffOutputSerializer,
)

logger = logging.getLogger("django.request")

M = TypeVar("M", bound=Model)
#: the largest id a bigint column holds: larger numbers are input errors, not overflows
MAX_ID = 2**63 - 1

# --- errors --------------------------------------------------------------------------------


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "A room or a person is already taken."
    default_code = "conflict"


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """DRF's handler, plus: the services' SchedulingError is a 400 with its field errors,
    BookingConflict a 409, a model ValidationError a 400, and anything unexpected a logged
    JSON 500, so that an API client always gets JSON."""
    if isinstance(exc, services.SchedulingError):
        exc = exceptions.ValidationError(exc.errors)
    elif isinstance(exc, services.BookingConflict):
        exc = Conflict(str(exc))
    elif isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(as_serializer_error(exc))
    response: Response | None = drf_exception_handler(exc, context)
    if response is not None:
        return response
    request = context.get("request")
    logger.error(
        "Internal Server Error: %s",
        getattr(request, "path", "?"),
        exc_info=(type(exc), exc, exc.__traceback__),
    )
    set_rollback()
    return Response(
        {"detail": "A server error occurred."}, status=status.HTTP_500_INTERNAL_SERVER_ERROR
    )


# --- helpers -------------------------------------------------------------------------------


def _user(request: Request) -> User:
    user: User = request.user
    return user


def _get(queryset: QuerySet[M], request: Request, pk: int) -> M:
    """One object of a site the user works at, or 404."""
    return get_object_or_404(scoped(queryset, request.user), pk=pk)


#: "2027-02-30" has the right format but is no date: say so instead of DRF's "wrong format"
REAL_DATE = {"invalid": "Not a real date; use YYYY-MM-DD, e.g. 2027-03-01."}


class AwareDateTimeField(serializers.DateTimeField):
    """An ISO 8601 date-time that must carry its UTC offset: a clinic's local wall time is
    ambiguous without it, and DRF would otherwise read it as UTC."""

    default_error_messages = {
        "naive": "Give the time with its UTC offset, e.g. 2027-03-01T09:00:00-05:00.",
    }

    def to_internal_value(self, value: Any) -> datetime:
        if isinstance(value, str):
            try:
                parsed = parse_datetime(value.strip())
            except ValueError:
                parsed = None  # well formed but impossible: DRF's own message below
            if parsed is not None and parsed.tzinfo is None:
                self.fail("naive")
        result: datetime = super().to_internal_value(value)
        return result


def _site_field_error() -> exceptions.ValidationError:
    # the same words whether the site exists elsewhere or not at all
    return exceptions.ValidationError("No site with this slug among the sites you work at.")


def _visible_site(request: Request, slug: str) -> Site:
    site = scoped(Site.objects.all(), request.user).filter(slug=slug).first()
    if site is None:
        raise _site_field_error()
    return site


# Course dates are planned over a year and a half; far-off years overflow date arithmetic.
EARLIEST_YEAR, LATEST_YEAR = 2000, 2100


def _check_year(value: date) -> None:
    if not EARLIEST_YEAR <= value.year <= LATEST_YEAR:
        raise exceptions.ValidationError(
            f"Give a date between the years {EARLIEST_YEAR} and {LATEST_YEAR}."
        )


# --- sites, rooms, staff, dyads (read-only) ------------------------------------------------


class SiteListApi(APIView):
    @extend_schema(responses=SiteOutputSerializer(many=True), tags=["sites"])
    def get(self, request: Request) -> Response:
        sites = scoped(Site.objects.all(), request.user)
        return Response(SiteOutputSerializer(sites, many=True).data)


class SiteDetailApi(APIView):
    @extend_schema(responses=SiteOutputSerializer, tags=["sites"])
    def get(self, request: Request, pk: int) -> Response:
        return Response(SiteOutputSerializer(_get(Site.objects.all(), request, pk)).data)


class RoomListApi(APIView):
    @extend_schema(responses=RoomOutputSerializer(many=True), tags=["sites"])
    def get(self, request: Request) -> Response:
        rooms = scoped(Room.objects.select_related("site"), request.user)
        return Response(RoomOutputSerializer(rooms, many=True).data)


class RoomDetailApi(APIView):
    @extend_schema(responses=RoomOutputSerializer, tags=["sites"])
    def get(self, request: Request, pk: int) -> Response:
        room = _get(Room.objects.select_related("site"), request, pk)
        return Response(RoomOutputSerializer(room).data)


def _staff_context(request: Request) -> dict[str, Any]:
    return {"visible_sites": selectors.user_site_ids(request.user)}


class StaffListApi(APIView):
    @extend_schema(responses=StaffOutputSerializer(many=True), tags=["sites"])
    def get(self, request: Request) -> Response:
        staff = selectors.staff_users_scoped(request.user).order_by("user__username")
        context = _staff_context(request)
        return Response(StaffOutputSerializer(staff, many=True, context=context).data)


class StaffDetailApi(APIView):
    @extend_schema(
        responses=StaffOutputSerializer,
        tags=["sites"],
        description="A staff member by user id (the ids that sessions list as therapists).",
    )
    def get(self, request: Request, pk: int) -> Response:
        profile = get_object_or_404(selectors.staff_users_scoped(request.user), user_id=pk)
        return Response(StaffOutputSerializer(profile, context=_staff_context(request)).data)


class DyadListApi(APIView):
    @extend_schema(responses=DyadOutputSerializer(many=True), tags=["sites"])
    def get(self, request: Request) -> Response:
        dyads = scoped(Dyad.objects.select_related("site"), request.user)
        return Response(DyadOutputSerializer(dyads, many=True).data)


class DyadDetailApi(APIView):
    @extend_schema(responses=DyadOutputSerializer, tags=["sites"])
    def get(self, request: Request, pk: int) -> Response:
        dyad = _get(Dyad.objects.select_related("site"), request, pk)
        return Response(DyadOutputSerializer(dyad).data)


# --- participants --------------------------------------------------------------------------


def _participants() -> QuerySet[Participant]:
    return Participant.objects.select_related("site").prefetch_related(
        "courses__protocol_version__protocol", "partner_courses__protocol_version__protocol"
    )


class ParticipantEnrolOutputSerializer(ParticipantOutputSerializer):
    """The participant and the sessions of the course just booked (``context["sessions"]``)."""

    sessions = serializers.SerializerMethodField()

    class Meta(ParticipantOutputSerializer.Meta):
        fields = [*ParticipantOutputSerializer.Meta.fields, "sessions"]

    @extend_schema_field(SessionOutputSerializer(many=True))
    def get_sessions(self, participant: Participant) -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = SessionOutputSerializer(
            self.context["sessions"], many=True
        ).data
        return data


class ParticipantListApi(APIView):
    # GET lists the participants of the user's sites; POST enrols one (books everything)

    @extend_schema_serializer(component_name="ParticipantEnrol")
    class InputSerializer(serializers.Serializer):
        code = serializers.CharField(max_length=30)
        site = serializers.SlugField(max_length=50, help_text="Slug of a site you work at.")
        protocol = serializers.SlugField(max_length=50, help_text="Slug of a protocol.")
        start_date = serializers.DateField(error_messages=REAL_DATE)
        dyad = serializers.IntegerField(
            max_value=MAX_ID,
            required=False,
            allow_null=True,
            help_text="Id of a dyad; default: least busy.",
        )
        partner_code = serializers.CharField(
            max_length=30, required=False, allow_null=True, help_text="Couples protocols only."
        )

        def validate_site(self, value: str) -> Site:
            return _visible_site(self.context["request"], value)

        def validate_start_date(self, value: date) -> date:
            _check_year(value)
            return value

        def validate_dyad(self, value: int | None) -> Dyad | None:
            if value is None:
                return None
            found = scoped(Dyad.objects.all(), self.context["request"].user).filter(pk=value)
            dyad = found.first()
            if dyad is None:
                raise exceptions.ValidationError("No dyad with this id at your sites.")
            return dyad

    @extend_schema(
        responses=ParticipantOutputSerializer(many=True),
        tags=["participants"],
        description="The participants of the sites you work at.",
    )
    def get(self, request: Request) -> Response:
        participants = scoped(_participants(), request.user)
        return Response(ParticipantOutputSerializer(participants, many=True).data)

    @extend_schema(
        request=InputSerializer,
        responses={
            201: ParticipantEnrolOutputSerializer,
            400: OpenApiResponse(OpenApiTypes.OBJECT, description="Field errors."),
            409: OpenApiResponse(OpenApiTypes.OBJECT, description="A room or person was taken."),
        },
        tags=["participants"],
        description=(
            "Enrol a participant: plan the whole course with the site's calendar and book every "
            "session's room and staff. Nothing is stored on any error."
        ),
        examples=[
            OpenApiExample(
                "enrol",
                request_only=True,
                value={
                    "code": "P-001",
                    "site": "nyc",
                    "protocol": "mapp-ptsd",
                    "start_date": "2027-03-01",
                },
            )
        ],
    )
    def post(self, request: Request) -> Response:
        data = _valid(self.InputSerializer, request)
        try:
            course = services.participant_enrol(
                site=data["site"],
                code=data["code"],
                protocol_slug=data["protocol"],
                start_date=data["start_date"],
                dyad=data.get("dyad"),
                partner_code=data.get("partner_code") or None,
                by=_user(request),
            )
        except services.SchedulingError as exc:  # name the input field the client sent
            errors = exc.errors.copy()
            if "partner" in errors:
                errors["partner_code"] = errors.pop("partner")
            raise exceptions.ValidationError(errors) from exc
        participant = _get(_participants(), request, course.participant_id)
        sessions = selectors.sessions_list(request.user, course=course)
        output = ParticipantEnrolOutputSerializer(participant, context={"sessions": sessions})
        return Response(output.data, status=status.HTTP_201_CREATED)


def _valid(serializer_class: type[serializers.Serializer], request: Request) -> dict[str, Any]:
    serializer = serializer_class(data=request.data, context={"request": request})
    serializer.is_valid(raise_exception=True)
    data: dict[str, Any] = serializer.validated_data
    return data


class ParticipantDetailApi(APIView):
    @extend_schema(responses=ParticipantOutputSerializer, tags=["participants"])
    def get(self, request: Request, pk: int) -> Response:
        return Response(ParticipantOutputSerializer(_get(_participants(), request, pk)).data)


class ParticipantSessionsApi(APIView):
    @extend_schema(
        responses=SessionDetailOutputSerializer(many=True),
        tags=["participants"],
        description="Every session of the participant's courses (as participant or partner).",
    )
    def get(self, request: Request, pk: int) -> Response:
        participant = _get(Participant.objects.all(), request, pk)
        sessions = selectors.sessions_list(request.user).filter(
            Q(course__participant=participant) | Q(course__partner=participant)
        )
        return Response(SessionDetailOutputSerializer(sessions, many=True).data)


# --- sessions ------------------------------------------------------------------------------


def _local_days(sites: QuerySet[Site], first: date | None, last: date | None) -> Q:
    """Sessions that start on local dates ``first`` to ``last`` (inclusive) at their site."""
    condition = Q(pk__in=[])
    for site in sites:
        zone = ZoneInfo(site.timezone)
        at_site = Q(course__participant__site=site)
        if first is not None:
            at_site &= Q(start__gte=datetime.combine(first, time(), zone))
        if last is not None:
            at_site &= Q(start__lt=datetime.combine(last + timedelta(days=1), time(), zone))
        condition |= at_site
    return condition


class SessionListApi(APIView):
    @extend_schema_serializer(component_name="SessionFilter")
    class FilterSerializer(serializers.Serializer):
        site = serializers.SlugField(required=False, help_text="Slug of a site you work at.")
        room = serializers.IntegerField(max_value=MAX_ID, required=False, min_value=1)
        therapist = serializers.IntegerField(
            max_value=MAX_ID,
            required=False,
            min_value=1,
            help_text="User id of a staff member booked.",
        )
        status = serializers.ChoiceField(required=False, choices=ScheduledSession.Status.choices)

        def get_fields(self) -> dict[str, serializers.Field]:
            fields: dict[str, serializers.Field] = super().get_fields()
            # "from" is a Python keyword, so these two cannot be class attributes
            fields["from"] = serializers.DateField(
                required=False,
                error_messages=REAL_DATE,
                help_text="First local date at the site (inclusive).",
            )
            fields["to"] = serializers.DateField(
                required=False,
                error_messages=REAL_DATE,
                help_text="Last local date at the site (inclusive).",
            )
            return fields

        def validate_site(self, value: str) -> Site:
            return _visible_site(self.context["request"], value)

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            for name in ("from", "to"):
                if attrs.get(name) is not None:
                    try:
                        _check_year(attrs[name])
                    except exceptions.ValidationError as exc:
                        raise exceptions.ValidationError({name: exc.detail}) from exc
            first, last = attrs.get("from"), attrs.get("to")
            if first is not None and last is not None and first > last:
                raise exceptions.ValidationError({"to": ["Must not be before 'from'."]})
            return attrs

    @extend_schema(
        parameters=[FilterSerializer],
        responses=SessionDetailOutputSerializer(many=True),
        tags=["sessions"],
    )
    def get(self, request: Request) -> Response:
        serializer = self.FilterSerializer(data=request.query_params, context={"request": request})
        serializer.is_valid(raise_exception=True)
        filters = serializer.validated_data
        sessions = selectors.sessions_list(request.user)
        if "site" in filters:
            sessions = sessions.filter(course__participant__site=filters["site"])
        if "room" in filters:
            sessions = sessions.filter(room_id=filters["room"])
        if "therapist" in filters:
            booked = StaffBooking.objects.filter(user_id=filters["therapist"], active=True)
            sessions = sessions.filter(pk__in=booked.values("session_id"))
        if "status" in filters:
            sessions = sessions.filter(status=filters["status"])
        if "from" in filters or "to" in filters:
            sites = scoped(Site.objects.all(), request.user)
            if "site" in filters:
                sites = sites.filter(pk=filters["site"].pk)
            sessions = sessions.filter(_local_days(sites, filters.get("from"), filters.get("to")))
        return Response(SessionDetailOutputSerializer(sessions, many=True).data)


def _session(request: Request, pk: int) -> ScheduledSession:
    """A session of the user's sites with what its output reads, or 404."""
    return get_object_or_404(selectors.sessions_list(request.user), pk=pk)


class SessionDetailApi(APIView):
    @extend_schema(responses=SessionDetailOutputSerializer, tags=["sessions"])
    def get(self, request: Request, pk: int) -> Response:
        return Response(SessionDetailOutputSerializer(_session(request, pk)).data)


ERRORS: dict[int | str, Any] = {
    400: OpenApiResponse(OpenApiTypes.OBJECT, description="Field errors."),
    404: OpenApiResponse(OpenApiTypes.OBJECT, description="No such session at your sites."),
}


class SessionRescheduleApi(APIView):
    @extend_schema_serializer(component_name="SessionReschedule")
    class InputSerializer(serializers.Serializer):
        start = AwareDateTimeField(help_text="New start, ISO 8601 with its UTC offset.")
        reason = serializers.CharField(
            required=False,
            allow_blank=True,
            default="",
            max_length=2000,
            help_text="Needed when the session leaves its window (recorded as a deviation).",
        )
        dry_run = serializers.BooleanField(
            required=False, default=False, help_text="Only show what would move."
        )

        def validate_start(self, value: datetime) -> datetime:
            _check_year(value.date())
            return value

    @extend_schema(
        request=InputSerializer,
        responses={
            200: RescheduleOutputSerializer,
            **ERRORS,
            409: inline_serializer("ConflictError", {"detail": serializers.CharField()}),
        },
        tags=["sessions"],
        description=(
            "Move a session; every session anchored on it is re-planned from its own anchor. "
            "With dry_run nothing is stored and `applied` is false."
        ),
    )
    def post(self, request: Request, pk: int) -> Response:
        session = _session(request, pk)
        data = _valid(self.InputSerializer, request)
        result = services.session_reschedule(
            session=session,
            start=data["start"],
            reason=data["reason"],
            dry_run=data["dry_run"],
            by=_user(request),
        )
        return Response(RescheduleOutputSerializer(result).data)


class SessionCancelApi(APIView):
    @extend_schema_serializer(component_name="SessionCancel")
    class InputSerializer(serializers.Serializer):
        reason = serializers.CharField(
            required=False, allow_blank=True, default="", max_length=2000
        )

    @extend_schema(
        request=InputSerializer,
        responses={200: SessionDetailOutputSerializer, **ERRORS},
        tags=["sessions"],
        description="Cancel a session (needs a reason; recorded as a deviation; frees its room "
        "and staff).",
    )
    def post(self, request: Request, pk: int) -> Response:
        session = _session(request, pk)
        data = _valid(self.InputSerializer, request)
        services.session_set_status(
            session=session,
            status=ScheduledSession.Status.CANCELLED,
            reason=data["reason"],
            by=_user(request),
        )
        return Response(SessionDetailOutputSerializer(_session(request, pk)).data)


#: the statuses a session can be given (it starts planned)
STATUS_CHANGES = [
    (value, label)
    for value, label in ScheduledSession.Status.choices
    if value != ScheduledSession.Status.PLANNED
]


class SessionStatusApi(APIView):
    @extend_schema_serializer(component_name="SessionStatusChange")
    class InputSerializer(serializers.Serializer):
        status = serializers.ChoiceField(choices=STATUS_CHANGES)
        reason = serializers.CharField(
            required=False,
            allow_blank=True,
            default="",
            max_length=2000,
            help_text="Needed for cancelled and missed.",
        )

    @extend_schema(
        request=InputSerializer,
        responses={200: SessionDetailOutputSerializer, **ERRORS},
        tags=["sessions"],
    )
    def post(self, request: Request, pk: int) -> Response:
        session = _session(request, pk)
        data = _valid(self.InputSerializer, request)
        services.session_set_status(
            session=session, status=data["status"], reason=data["reason"], by=_user(request)
        )
        return Response(SessionDetailOutputSerializer(_session(request, pk)).data)
