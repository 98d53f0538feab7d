# mypy: allow-subclassing-any
# (rest_framework has no type stubs here, so its classes are Any to mypy.)
"""The REST API of scheduling: thin views that read through the access policy and write through
services, each with its input serializer nested in it (HackSoft style).

Access: every door asks ``scheduling.access``. Lists and details read
``access.scope(queryset, user, Action.VIEW)``, so an object the user may not see (another
site's, or a participant a therapist does not treat) answers 404 and is absent from lists. A
write asks for its own action on the object: enrolling needs ENROL, moving a session
RESCHEDULE, cancelling and status changes SET_STATUS; an object the user sees but may not act
on answers 403 and nothing changes. A site named in input where the user may not enrol reads
exactly like an unknown site. Reads of one participant's record are logged
(``services.access_log_record``). Lists are pages (``config.api.Pagination``)."""

from __future__ import annotations

import logging
from datetime import date, datetime, time, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Model, Prefetch, Q, QuerySet
from django.shortcuts import get_object_or_404
from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    extend_schema_serializer,
)
from rest_framework import exceptions, generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import as_serializer_error
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback

from config.api import ApiSchema, ErrorSerializer, Pagination, QuerySerializer
from protocol.models import ProtocolVersion
from scheduling import access, checkins, services, validators
from scheduling.access import Action
from scheduling.models import (
    CheckInOutcome,
    Course,
    Dyad,
    Participant,
    Reminder,
    Room,
    ScheduledSession,
    Site,
    StaffBooking,
    StaffProfile,
)
from scheduling.serializers import (
    CheckInOutcomeOutputSerializer,
    ConsequenceOutputSerializer,
    DyadOutputSerializer,
    EndingOutputSerializer,
    ParticipantOutputSerializer,
    RebookOutputSerializer,
    ReminderOutputSerializer,
    RescheduleOutputSerializer,
    RoomOutputSerializer,
    SessionDetailOutputSerializer,
    SessionOutputSerializer,
    SessionStatusOutputSerializer,
    SiteOutputSerializer,
    StaffOutputSerializer,
)

logger = logging.getLogger("django.request")

M = TypeVar("M", bound=Model)
#: the largest id a bigint column holds: larger numbers are input errors, not overflows
MAX_ID = 2**63 - 1
#: seed_demo's site, so that the documentation's examples work against the demo
DEMO_SITE = "demo"

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


CONFLICT = OpenApiResponse(
    ErrorSerializer, description="A room or a person was taken meanwhile; nothing written."
)

# --- the views' shapes ---------------------------------------------------------------------


class ListApi(generics.ListAPIView):
    # a list: one page of what the user may see, in a fixed number of queries

    pagination_class = Pagination
    schema = ApiSchema()


class DetailApi(generics.RetrieveAPIView):
    # one object the user may see; anything else is 404

    schema = ApiSchema()


class ActionApi(generics.GenericAPIView):
    # a write on one object: a POST with a JSON body

    schema = ApiSchema()


# --- helpers -------------------------------------------------------------------------------


def _scope(queryset: QuerySet[M], request: Request, action: str = Action.VIEW) -> QuerySet[M]:
    return access.scope(queryset, request.user, action)


def _schema_only(view: generics.GenericAPIView) -> bool:
    """drf-spectacular builds the schema with a stand-in view (no real request)."""
    return bool(getattr(view, "swagger_fake_view", False))


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
    # the same words whether the site exists elsewhere, forbids enrolling, or does not exist
    return exceptions.ValidationError("No site with this slug among the sites you work at.")


def _enrol_sites(request: Request) -> QuerySet[Site]:
    """The sites where the user may enrol: ENROL reaches a whole site or nothing."""
    reach = access.scope_of(request.user, Action.ENROL, Participant)
    if reach not in (None, access.Scope.SITE):
        return Site.objects.none()
    return _scope(Site.objects.all(), request)


def _valid(serializer_class: type[serializers.Serializer], request: Request) -> dict[str, Any]:
    serializer = serializer_class(data=request.data, context={"request": request})
    serializer.is_valid(raise_exception=True)
    data: dict[str, Any] = serializer.validated_data
    return data


def _reason_field(help_text: str) -> serializers.CharField:
    return serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        max_length=validators.REASON_MAX_LENGTH,
        help_text=help_text,
    )


# --- sites, rooms, staff, dyads (read-only) ------------------------------------------------


@extend_schema(tags=["sites"])
class SiteListApi(ListApi):
    serializer_class = SiteOutputSerializer

    def get_queryset(self) -> QuerySet[Site]:
        return _scope(Site.objects.order_by("name", "pk"), self.request)


@extend_schema(tags=["sites"])
class SiteDetailApi(DetailApi):
    serializer_class = SiteOutputSerializer

    def get_queryset(self) -> QuerySet[Site]:
        return _scope(Site.objects.all(), self.request)


def _rooms(request: Request) -> QuerySet[Room]:
    return _scope(Room.objects.select_related("site"), request)


@extend_schema(tags=["sites"])
class RoomListApi(ListApi):
    serializer_class = RoomOutputSerializer

    def get_queryset(self) -> QuerySet[Room]:
        return _rooms(self.request).order_by("site__name", "kind", "name", "pk")


@extend_schema(tags=["sites"])
class RoomDetailApi(DetailApi):
    serializer_class = RoomOutputSerializer

    def get_queryset(self) -> QuerySet[Room]:
        return _rooms(self.request)


class StaffApiMixin:
    # staff members by user id (the ids sessions list as therapists); each names only the
    # sites the reader may see

    request: Request
    serializer_class = StaffOutputSerializer
    lookup_field = "user_id"
    lookup_url_kwarg = "pk"

    def get_queryset(self) -> QuerySet[StaffProfile]:
        # only what the output reads (not the password hash and the dates of every user)
        people = ("user__username", "user__first_name", "user__last_name")
        sites = Prefetch("sites", queryset=Site.objects.only("slug"), to_attr="site_list")
        profiles = (
            StaffProfile.objects.select_related("user")
            .only("user_id", "role", *people)
            .prefetch_related(sites)
        )
        return _scope(profiles, self.request).order_by("user__username", "pk")

    def get_serializer_context(self) -> dict[str, Any]:
        context: dict[str, Any] = super().get_serializer_context()  # type: ignore[misc]
        context["visible_sites"] = access.user_site_ids(self.request.user)
        return context


@extend_schema(tags=["sites"], description="Staff members; each names only sites you see.")
class StaffListApi(StaffApiMixin, ListApi):
    pass


@extend_schema(
    tags=["sites"],
    description="A staff member by user id (the ids that sessions list as therapists).",
)
class StaffDetailApi(StaffApiMixin, DetailApi):
    pass


def _dyads(request: Request) -> QuerySet[Dyad]:
    return _scope(Dyad.objects.select_related("site"), request)


@extend_schema(tags=["sites"])
class DyadListApi(ListApi):
    serializer_class = DyadOutputSerializer

    def get_queryset(self) -> QuerySet[Dyad]:
        return _dyads(self.request).order_by("site__name", "name", "pk")


@extend_schema(tags=["sites"])
class DyadDetailApi(DetailApi):
    serializer_class = DyadOutputSerializer

    def get_queryset(self) -> QuerySet[Dyad]:
        return _dyads(self.request)


# --- participants --------------------------------------------------------------------------


#: the columns the outputs read (psycopg parses every date-time it loads; a page loads many)
SESSION_COLUMNS = (
    *("id", "course_id", "key", "kind", "title", "start", "end", "status", "room_id"),
    *("window_start", "window_end", "overnight", "sequence", "plan_reason"),
)
COURSE_COLUMNS = ("id", "participant_id", "partner_id", "dyad_id", "start_date", "status")
PARTICIPANT_COLUMNS = ("id", "code", "site_id", "status", "partner_id", "created_at")


def _participants(request: Request) -> QuerySet[Participant]:
    """The participants the user may see, each with the courses the user may see."""
    # only the columns the output reads: loading (and parsing) the rest cost more than the
    # rest of a page together
    courses = Course.objects.select_related("protocol_version__protocol").only(
        *COURSE_COLUMNS, "protocol_version__version", "protocol_version__protocol__slug"
    )
    courses = _scope(courses, request)
    participants = Participant.objects.select_related("site").only(
        *PARTICIPANT_COLUMNS, "site__slug"
    )
    return _scope(participants, request).prefetch_related(
        # to_attr: plain lists; without it Django clones the queryset once per participant
        Prefetch("courses", queryset=courses.order_by("pk"), to_attr="visible_courses"),
        Prefetch("partner_courses", queryset=courses.order_by("pk"), to_attr="partner_of"),
    )


def _session_rows() -> QuerySet[ScheduledSession]:
    """Sessions with what their output reads, and nothing more (a page has ~100 bookings)."""
    held = StaffBooking.objects.filter(active=True).only("session_id", "user_id", "active")
    return (
        ScheduledSession.objects.select_related("course__participant")
        .only(*SESSION_COLUMNS, "course__participant_id", "course__participant__code")
        .prefetch_related(Prefetch("staff", queryset=held, to_attr="active_staff"))
    )


def _sessions(request: Request, action: str = Action.VIEW) -> QuerySet[ScheduledSession]:
    """The sessions the user may ``action``, with what their output reads, in start order."""
    return _scope(_session_rows(), request, action).order_by("start", "key", "pk")


def _log_read(request: Request, participant: Participant, route: str) -> None:
    services.access_log_record(user=request.user, participant=participant, door="api", route=route)


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


class ParticipantListApi(ListApi):
    # GET lists the participants the user may see; POST enrols one (books everything)
    serializer_class = ParticipantOutputSerializer

    @extend_schema_serializer(component_name="ParticipantEnrol")
    class InputSerializer(serializers.Serializer):
        code = serializers.CharField(
            max_length=validators.STUDY_CODE_MAX_LENGTH,
            validators=[validators.STUDY_CODE],
            help_text="The participant's study code (never a name): letters, digits, - _ .",
        )
        site = serializers.SlugField(max_length=50, help_text="Slug of a site where you may enrol.")
        protocol = serializers.SlugField(max_length=50, help_text="Slug of a protocol.")
        start_date = serializers.DateField(
            error_messages=REAL_DATE,
            validators=[validators.plausible_date],
            help_text="The course's first day, a day the site is open.",
        )
        dyad = serializers.IntegerField(
            min_value=1,
            max_value=MAX_ID,
            required=False,
            allow_null=True,
            help_text="Id of a dyad of the site; default: the least busy one.",
        )
        partner_code = serializers.CharField(
            max_length=validators.STUDY_CODE_MAX_LENGTH,
            validators=[validators.STUDY_CODE],
            required=False,
            allow_null=True,
            help_text="The partner's study code; couples protocols only.",
        )
        email = serializers.EmailField(
            max_length=Participant._meta.get_field("email").max_length,  # the column's 254
            required=False,
            allow_blank=True,
            help_text="For reminders by email.",
        )
        phone = serializers.CharField(
            max_length=30, required=False, allow_blank=True, help_text="For reminders by SMS."
        )
        preferred_channel = serializers.ChoiceField(
            choices=Participant.Channel.choices,
            required=False,
            help_text="How reminders go: sms needs a phone, email an email address.",
        )
        back_entry_reason = serializers.CharField(
            max_length=validators.REASON_MAX_LENGTH,
            required=False,
            allow_blank=True,
            help_text="A start before the site's today is a back-entry: say why it is entered "
            "late (recorded in the audit history).",
        )

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            errors = validators.reminder_contact_errors(
                attrs.get("preferred_channel", "none"),
                attrs.get("email", ""),
                attrs.get("phone", ""),
            )
            if errors:
                raise exceptions.ValidationError({k: [v] for k, v in errors.items()})
            return attrs

        def validate_site(self, value: str) -> Site:
            site = _enrol_sites(self.context["request"]).filter(slug=value).first()
            if site is None:
                raise _site_field_error()
            return site

        def validate_dyad(self, value: int | None) -> Dyad | None:
            if value is None:
                return None
            dyad = _dyads(self.context["request"]).filter(pk=value).first()
            if dyad is None:
                raise exceptions.ValidationError("No dyad with this id at your sites.")
            return dyad

    def get_queryset(self) -> QuerySet[Participant]:
        return _participants(self.request).order_by("site__name", "code", "pk")

    @extend_schema(
        tags=["participants"],
        description="The participants you may see: all of your sites' for coordinators and "
        "administrators, those you treat for therapists, those of your nights for night "
        "attendants, none for remote assessors.",
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        request=InputSerializer,
        responses={201: ParticipantEnrolOutputSerializer, 409: CONFLICT},
        tags=["participants"],
        description=(
            "Enrol a participant (coordinators and administrators; anyone else: 403): plan "
            "the whole course with the site's calendar and book every session's room and "
            "staff. Nothing is stored on any error."
        ),
        examples=[
            OpenApiExample(
                "enrol",
                request_only=True,
                value={
                    "code": "P-001",
                    "site": DEMO_SITE,
                    "protocol": "mapp-ptsd",
                    "start_date": "2027-03-01",
                },
            ),
            OpenApiExample(
                "enrol a couple",
                request_only=True,
                value={
                    "code": "C-001",
                    "site": DEMO_SITE,
                    "protocol": "mdma-cbct-couples",
                    "start_date": "2027-03-01",
                    "partner_code": "C-002",
                },
            ),
        ],
    )
    def post(self, request: Request) -> Response:
        if not access.allows(request.user, Action.ENROL, Participant):
            raise exceptions.PermissionDenied(
                "Only coordinators and administrators enrol participants."
            )
        data = _valid(self.InputSerializer, request)
        try:
            course = services.participant_enrol(
                suggest_starts=True,
                site=data["site"],
                code=data["code"],
                protocol_slug=data["protocol"],
                start_date=data["start_date"],
                dyad=data.get("dyad"),
                partner_code=data.get("partner_code") or None,
                by=request.user,
                contact={
                    "email": data.get("email", ""),
                    "phone": data.get("phone", ""),
                    "preferred_channel": data.get("preferred_channel", "none"),
                },
                back_entry_reason=data.get("back_entry_reason", ""),
            )
        except services.SchedulingError as exc:  # name the input field the client sent
            errors = exc.errors.copy()
            if "partner" in errors:
                errors["partner_code"] = errors.pop("partner")
            raise exceptions.ValidationError(errors) from exc
        participant = _participants(request).get(pk=course.participant_id)
        sessions = _sessions(request).filter(course=course)
        output = ParticipantEnrolOutputSerializer(participant, context={"sessions": sessions})
        return Response(output.data, status=status.HTTP_201_CREATED)


@extend_schema(tags=["participants"], description="A participant's record (the read is logged).")
class ParticipantDetailApi(DetailApi):
    serializer_class = ParticipantOutputSerializer

    def get_queryset(self) -> QuerySet[Participant]:
        return _participants(self.request)

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        participant = self.get_object()
        response = Response(self.get_serializer(participant).data)
        _log_read(request, participant, "participant")
        return response


@extend_schema(
    tags=["participants"],
    description="The sessions you may see of the participant's courses (as participant or "
    "partner), in start order (the read is logged).",
)
class ParticipantSessionsApi(ListApi):
    serializer_class = SessionDetailOutputSerializer

    def get_queryset(self) -> QuerySet[ScheduledSession]:
        if _schema_only(self):
            return ScheduledSession.objects.none()
        found = self.participant
        return _sessions(self.request).filter(
            Q(course__participant=found) | Q(course__partner=found)
        )

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        self.participant = get_object_or_404(
            _scope(Participant.objects.all(), request), pk=kwargs["pk"]
        )
        response = super().list(request, *args, **kwargs)
        _log_read(request, self.participant, "participant-sessions")
        return response


@extend_schema(
    tags=["participants"],
    description="The reminders of the participant's sessions (as participant or partner), in "
    "due order: planned (pending, sending), sent, failed, skipped and cancelled, each with the "
    "reason for its status; to the participant or to staff (check-in calls, escalations). "
    "Times are UTC (the read is logged).",
)
class ParticipantRemindersApi(ListApi):
    serializer_class = ReminderOutputSerializer

    def get_queryset(self) -> QuerySet[Reminder]:
        if _schema_only(self):
            return Reminder.objects.none()
        found = self.participant
        return (
            _scope(Reminder.objects.all(), self.request)
            .filter(Q(session__course__participant=found) | Q(session__course__partner=found))
            .order_by("due_at", "pk")
        )

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        self.participant = get_object_or_404(
            _scope(Participant.objects.all(), request), pk=kwargs["pk"]
        )
        response = super().list(request, *args, **kwargs)
        _log_read(request, self.participant, "participant-reminders")
        return response


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


@extend_schema_serializer(component_name="SessionFilter")
class SessionFilterSerializer(QuerySerializer):
    site = serializers.SlugField(
        required=False, max_length=50, help_text="Slug of a site you work at."
    )
    room = serializers.IntegerField(
        min_value=1, max_value=MAX_ID, required=False, help_text="Id of a room."
    )
    therapist = serializers.IntegerField(
        min_value=1,
        max_value=MAX_ID,
        required=False,
        help_text="User id of a staff member booked on the session.",
    )
    status = serializers.ChoiceField(required=False, choices=ScheduledSession.Status.choices)

    def get_fields(self) -> dict[str, serializers.Field]:
        fields: dict[str, serializers.Field] = super().get_fields()
        # "from" is a Python keyword, so these two cannot be class attributes
        fields["from"] = serializers.DateField(
            required=False,
            error_messages=REAL_DATE,
            validators=[validators.plausible_date],
            help_text="First local date at the site (inclusive).",
        )
        fields["to"] = serializers.DateField(
            required=False,
            error_messages=REAL_DATE,
            validators=[validators.plausible_date],
            help_text="Last local date at the site (inclusive).",
        )
        return fields

    def validate_site(self, value: str) -> Site:
        site = _scope(Site.objects.all(), self.context["request"]).filter(slug=value).first()
        if site is None:
            raise _site_field_error()
        return site

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        first, last = attrs.get("from"), attrs.get("to")
        if first is not None and last is not None and first > last:
            raise exceptions.ValidationError({"to": ["Must not be before 'from'."]})
        return attrs


@extend_schema(
    tags=["sessions"],
    parameters=[SessionFilterSerializer],
    description="The sessions you may see, in start order: all of your sites' for "
    "coordinators and administrators, those of the participants you treat for therapists, "
    "your nights for night attendants, the assessments booked to you for remote assessors.",
)
class SessionListApi(ListApi):
    serializer_class = SessionDetailOutputSerializer
    query_serializer = SessionFilterSerializer

    def get_queryset(self) -> QuerySet[ScheduledSession]:
        if _schema_only(self):
            return ScheduledSession.objects.none()
        request = self.request
        checked = SessionFilterSerializer(data=request.query_params, context={"request": request})
        checked.is_valid(raise_exception=True)
        filters = checked.validated_data
        sessions = _sessions(request)
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
            sites = _scope(Site.objects.all(), request)
            if "site" in filters:
                sites = sites.filter(pk=filters["site"].pk)
            sessions = sessions.filter(_local_days(sites, filters.get("from"), filters.get("to")))
        return sessions


@extend_schema(tags=["sessions"], description="A session you may see (the read is logged).")
class SessionDetailApi(DetailApi):
    serializer_class = SessionDetailOutputSerializer

    def get_queryset(self) -> QuerySet[ScheduledSession]:
        return _sessions(self.request)

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        session = self.get_object()
        response = Response(self.get_serializer(session).data)
        _log_read(request, session.course.participant, "session")
        return response


def _session_for(request: Request, pk: int, action: str) -> ScheduledSession:
    """A session the user may ``action``: 404 if they may not see it, 403 if they see it but
    may not act on it."""
    session = get_object_or_404(_sessions(request), pk=pk)
    if not access.can(request.user, action, session):
        raise exceptions.PermissionDenied(f"You may not {action} this session.")
    return session


def _session_output(pk: int) -> Response:
    """The session just changed. Read past the policy: a therapist who was booked on it (not
    its dyad's) no longer is once it is cancelled, yet acted on it a moment ago."""
    return Response(SessionDetailOutputSerializer(_session_rows().get(pk=pk)).data)


class PlacingInputSerializer(serializers.Serializer):
    """A session placed at a new time: a move, or a rebooking of a cancelled one."""

    start = AwareDateTimeField(
        validators=[validators.plausible_date],
        help_text="The new start, ISO 8601 with its UTC offset.",
    )
    reason = _reason_field(
        "Needed when the session leaves its window or the opening hours (recorded as a deviation)."
    )
    dry_run = serializers.BooleanField(
        required=False, default=False, help_text="Only show what would be booked and moved."
    )
    outside_hours = serializers.BooleanField(
        required=False,
        default=False,
        help_text=(
            "Book outside the site's opening hours or onto a closed day on purpose. Without it "
            "such a time is refused (400, on `start`, naming the rule). Only where the site "
            "allows out-of-hours moves; needs a reason; recorded as an `outside_hours` "
            "deviation."
        ),
    )


class SessionRescheduleApi(ActionApi):
    @extend_schema_serializer(component_name="SessionReschedule")
    class InputSerializer(PlacingInputSerializer):
        pass

    @extend_schema(
        request=InputSerializer,
        responses={200: RescheduleOutputSerializer, 409: CONFLICT},
        tags=["sessions"],
        description=(
            "Move a session (coordinators, administrators, and the participant's therapists); "
            "every session anchored on it is re-planned from its own anchor. With dry_run "
            "nothing is stored and `applied` is false. A time outside the site's opening "
            "hours, or a closed day or holiday, is a 400 on `start` naming the rule and the "
            "nearest times that work (see `outside_hours`)."
        ),
        examples=[
            OpenApiExample(
                "move",
                request_only=True,
                value={"start": "2027-03-09T10:00:00-05:00", "dry_run": True},
            )
        ],
    )
    def post(self, request: Request, pk: int) -> Response:
        session = _session_for(request, pk, Action.RESCHEDULE)
        data = _valid(self.InputSerializer, request)
        result = services.session_reschedule(session=session, by=request.user, **data)
        return Response(RescheduleOutputSerializer(result).data)


def _dry_run_field() -> serializers.BooleanField:
    return serializers.BooleanField(
        required=False,
        default=False,
        help_text="Only show what would happen (to the sessions anchored on this one too).",
    )


def _status_output(pk: int, change: services.StatusChange) -> Response:
    data = {
        **SessionDetailOutputSerializer(_session_rows().get(pk=pk)).data,
        "applied": change.applied,
        "dependents": ConsequenceOutputSerializer(change.consequences, many=True).data,
        "course_status": change.course_status,
    }
    return Response(data)


STATUS_DESCRIPTION = (
    " Cancelling or marking missed needs a reason, is recorded as a deviation and frees the "
    "session's room and staff. Sessions anchored on it are listed in `dependents`: those that "
    "only make sense with it (the next-morning session, the daily phone check-ins) are "
    "cancelled with it; the others stay planned and are re-planned when it is rebooked "
    "(`POST .../rebook/`). With dry_run nothing is stored and `applied` is false."
)


class SessionCancelApi(ActionApi):
    @extend_schema_serializer(component_name="SessionCancel")
    class InputSerializer(serializers.Serializer):
        reason = _reason_field("Why (required; recorded as a deviation).")
        dry_run = _dry_run_field()

    @extend_schema(
        request=InputSerializer,
        responses={200: SessionStatusOutputSerializer},
        tags=["sessions"],
        description="Cancel a session (coordinators, administrators, and the participant's "
        "therapists)." + STATUS_DESCRIPTION,
        examples=[
            OpenApiExample(
                "cancel", request_only=True, value={"reason": "participant unwell", "dry_run": True}
            )
        ],
    )
    def post(self, request: Request, pk: int) -> Response:
        session = _session_for(request, pk, Action.SET_STATUS)
        data = _valid(self.InputSerializer, request)
        change = services.session_change_status(
            session=session,
            status=ScheduledSession.Status.CANCELLED,
            reason=data["reason"],
            by=request.user,
            dry_run=data["dry_run"],
        )
        return _status_output(pk, change)


#: the statuses a session can be given (it starts planned)
STATUS_CHANGES = [
    (value, label)
    for value, label in ScheduledSession.Status.choices
    if value != ScheduledSession.Status.PLANNED
]


class SessionStatusApi(ActionApi):
    @extend_schema_serializer(component_name="SessionStatusChange")
    class InputSerializer(serializers.Serializer):
        status = serializers.ChoiceField(choices=STATUS_CHANGES)
        reason = _reason_field("Needed for cancelled and missed.")
        dry_run = _dry_run_field()

    @extend_schema(
        request=InputSerializer,
        responses={200: SessionStatusOutputSerializer},
        tags=["sessions"],
        description="Confirm, complete, cancel or mark missed (coordinators, administrators, "
        "and the participant's therapists). Completing the last session the course needs "
        "completes the course and its participants (`course_status`)." + STATUS_DESCRIPTION,
        examples=[OpenApiExample("confirm", request_only=True, value={"status": "confirmed"})],
    )
    def post(self, request: Request, pk: int) -> Response:
        session = _session_for(request, pk, Action.SET_STATUS)
        data = _valid(self.InputSerializer, request)
        change = services.session_change_status(
            session=session,
            status=data["status"],
            reason=data["reason"],
            by=request.user,
            dry_run=data["dry_run"],
        )
        return _status_output(pk, change)


class SessionRebookApi(ActionApi):
    @extend_schema_serializer(component_name="SessionRebook")
    class InputSerializer(PlacingInputSerializer):
        pass

    @extend_schema(
        request=InputSerializer,
        responses={200: RebookOutputSerializer, 409: CONFLICT},
        tags=["sessions"],
        description=(
            "Give a cancelled or missed session a new date (coordinators, administrators, and "
            "the participant's therapists). The cancelled session stays cancelled; a new session "
            "with the same key replaces it (`rebooked`, each with the id it `replaces`), with "
            "the sessions cancelled with it (next morning, phone check-ins), and every session "
            "anchored on it is re-planned from it (`moved`). A session that is not cancelled or "
            "missed, or was rebooked already, is a 400. With dry_run nothing is stored, "
            "`applied` is false and the new sessions have no id."
        ),
        examples=[
            OpenApiExample(
                "rebook",
                request_only=True,
                value={"start": "2027-04-20T09:00:00-04:00", "dry_run": True},
            )
        ],
    )
    def post(self, request: Request, pk: int) -> Response:
        session = _session_for(request, pk, Action.RESCHEDULE)
        data = _valid(self.InputSerializer, request)
        result = services.session_rebook(session=session, by=request.user, **data)
        return Response(RebookOutputSerializer(result).data)


class SessionCheckinOutcomeApi(ActionApi):
    @extend_schema_serializer(component_name="CheckInOutcomeRecord")
    class InputSerializer(serializers.Serializer):
        outcome = serializers.ChoiceField(
            choices=CheckInOutcome.Outcome.choices, help_text="What the call came to."
        )
        note = serializers.CharField(
            required=False,
            allow_blank=True,
            default="",
            max_length=validators.REASON_MAX_LENGTH,
            help_text="Required for a concern (the site's coordinators read it on the session).",
        )

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            if attrs["outcome"] == CheckInOutcome.Outcome.CONCERN and not attrs["note"].strip():
                raise exceptions.ValidationError(
                    {"note": ["Say what the concern is: the site's coordinators are told."]}
                )
            return attrs

    @extend_schema(
        request=InputSerializer,
        responses={201: CheckInOutcomeOutputSerializer},
        tags=["sessions"],
        description=(
            "Record what a phone check-in came to (the therapist booked on it, the site's "
            "coordinators and administrators; anyone else who sees it: 403). Several outcomes "
            "per check-in are kept; the latest counts. A concern needs a note and emails every "
            "coordinator of the site at once (`escalations`, written in the same transaction). "
            "A session that is not a phone check-in, was cancelled or rebooked, or lies on a "
            "later day is a 400 on `session`."
        ),
        examples=[
            OpenApiExample("reached", request_only=True, value={"outcome": "reached"}),
            OpenApiExample(
                "concern",
                request_only=True,
                value={"outcome": "concern", "note": "Low mood; asked for a call back today."},
            ),
        ],
    )
    def post(self, request: Request, pk: int) -> Response:
        session = _session_for(request, pk, Action.RECORD_CHECKIN)
        data = _valid(self.InputSerializer, request)
        row = checkins.checkin_record(session=session, by=request.user, **data)
        output = CheckInOutcomeOutputSerializer(
            row, context={"escalations": checkins.escalations_of(row)}
        )
        return Response(output.data, status=status.HTTP_201_CREATED)


class EndingInputSerializer(serializers.Serializer):
    reason = _reason_field("Why (required; recorded with every session it cancels).")
    dry_run = serializers.BooleanField(
        required=False, default=False, help_text="Only show what would be cancelled."
    )


class ParticipantWithdrawApi(ActionApi):
    @extend_schema(
        request=EndingInputSerializer,
        responses={200: EndingOutputSerializer},
        tags=["participants"],
        description=(
            "Withdraw a participant (coordinators and administrators): every active course "
            "they take is withdrawn (a couple's joint course for both partners) and everything "
            "still planned in it is cancelled, with the reason, freeing rooms and staff. "
            "With dry_run nothing is stored."
        ),
        examples=[
            OpenApiExample(
                "withdraw",
                request_only=True,
                value={"reason": "consent withdrawn", "dry_run": True},
            )
        ],
    )
    def post(self, request: Request, pk: int) -> Response:
        participant = get_object_or_404(_scope(Participant.objects.all(), request), pk=pk)
        if not access.can(request.user, Action.END, participant):
            raise exceptions.PermissionDenied("Only coordinators and administrators withdraw.")
        data = _valid(EndingInputSerializer, request)
        ending = services.participant_withdraw(
            participant=participant,
            reason=data["reason"],
            dry_run=data["dry_run"],
            by=request.user,
        )
        return Response(EndingOutputSerializer(ending).data)


class CourseEndApi(ActionApi):
    @extend_schema(
        request=EndingInputSerializer,
        responses={200: EndingOutputSerializer},
        tags=["participants"],
        description=(
            "End a course early (coordinators and administrators): everything still planned "
            "in it is cancelled, with the reason, freeing rooms and staff; the course is "
            "`ended`, and its participants `completed` when they have no other active course. "
            "With dry_run nothing is stored."
        ),
        examples=[
            OpenApiExample(
                "end", request_only=True, value={"reason": "clinical decision", "dry_run": True}
            )
        ],
    )
    def post(self, request: Request, pk: int) -> Response:
        course = get_object_or_404(_scope(Course.objects.all(), request), pk=pk)
        if not access.can(request.user, Action.END, course):
            raise exceptions.PermissionDenied("Only coordinators and administrators end a course.")
        data = _valid(EndingInputSerializer, request)
        ending = services.course_end(
            course=course, reason=data["reason"], dry_run=data["dry_run"], by=request.user
        )
        return Response(EndingOutputSerializer(ending).data)


# --- the protocol library's policy (config/urls.py hands it to protocol.api) ------------------


def reads_protocols(user: Any) -> bool:
    """Whether the user may read protocols with their dose plans: never a blinded assessor."""
    return access.allows(user, Action.VIEW, ProtocolVersion)
