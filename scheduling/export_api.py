# mypy: allow-subclassing-any
# (rest_framework has no type stubs here, so its classes are Any to mypy.)
"""The CSV exports through the REST API: the same checks, reads and files as the pages
(``scheduling.export_views``), answered as ``text/csv``; errors are JSON like every other API
error (400 field errors, 401, 403, 404).

Errors are always rendered as JSON whatever the client's Accept header says (a client asking
for ``text/csv`` still gets a readable error, never a 406)."""

from __future__ import annotations

from typing import Any

from django.http import StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, generics
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.request import Request

from config.api import BAD_INPUT, ApiSchema
from protocol.spec import Kind
from scheduling import exports, selectors, services
from scheduling.clock import local
from scheduling.export_views import csv_response, export_form, export_participant, export_site
from scheduling.models import ScheduledSession

CSV_PARAMETERS = ("from", "to", "kind", "status", "room", "therapist")


class JsonErrors(BaseContentNegotiation):
    """Always the first renderer (JSON) for what DRF renders (errors); the CSV itself is a
    streamed response that no renderer touches."""

    def select_parser(self, request: Request, parsers: list[Any]) -> Any:
        return parsers[0] if parsers else None

    def select_renderer(
        self, request: Request, renderers: list[Any], format_suffix: str | None = None
    ) -> tuple[Any, str]:
        return renderers[0], renderers[0].media_type


class CsvApi(generics.GenericAPIView):
    # the pages' doors raise Django's Http404 and PermissionDenied: DRF answers them as JSON
    schema = ApiSchema()
    content_negotiation_class = JsonErrors


def _csv(description: str) -> OpenApiResponse:
    return OpenApiResponse(OpenApiTypes.STR, description=description)


@extend_schema(
    tags=["exports"],
    parameters=[
        OpenApiParameter(
            "from",
            OpenApiTypes.DATE,
            required=True,
            description="First local date at the site (inclusive), YYYY-MM-DD.",
        ),
        OpenApiParameter(
            "to",
            OpenApiTypes.DATE,
            required=True,
            description=f"Last local date (inclusive); at most {exports.MAX_RANGE_DAYS} days "
            "from `from`, not before it.",
        ),
        OpenApiParameter(
            "kind", OpenApiTypes.STR, enum=[k.value for k in Kind], description="Session kind."
        ),
        OpenApiParameter(
            "status",
            OpenApiTypes.STR,
            enum=list(ScheduledSession.Status.values),
            description="Session status.",
        ),
        OpenApiParameter("room", OpenApiTypes.INT, description="Id of a room of this site."),
        OpenApiParameter(
            "therapist",
            OpenApiTypes.INT,
            description="User id of a staff member of this site booked on the session.",
        ),
    ],
    responses={
        (200, "text/csv"): _csv(
            "The site's sessions starting in the range, in start order, streamed; columns as "
            "the README's 'CSV exports' section documents. Content-Disposition names the site "
            "and the dates."
        ),
        400: BAD_INPUT,
    },
    description="The sessions of a site as CSV (coordinators and administrators of the site; "
    "anyone else: 403; another site: 404). Local times carry the zone.",
)
class SiteSessionsExportApi(CsvApi):
    forbidden = "Only the site's coordinators and administrators export its sessions."

    def get(self, request: Request, pk: int) -> StreamingHttpResponse:
        site = export_site(request, pk)
        blank = {
            name: ["Give a value, or leave the parameter out."]
            for name in CSV_PARAMETERS
            if name in request.query_params and not request.query_params[name].strip()
        }
        if blank:
            raise exceptions.ValidationError(blank)
        form = export_form(site, request.query_params)
        if not form.is_valid():
            raise exceptions.ValidationError(_messages(form))
        filters = form.filters()
        lines = selectors.site_sessions_export(request.user, site, **filters)
        filename = exports.site_filename(site.slug, filters["first"], filters["last"])
        return csv_response(exports.site_sessions_csv(lines), filename, bom=False)


def _messages(form: Any) -> dict[str, list[str]]:
    return {name: [str(message) for message in errors] for name, errors in form.errors.items()}


@extend_schema(
    tags=["exports"],
    responses={
        (200, "text/csv"): _csv(
            "One row per protocol session of each course of the participant, in protocol "
            "order, held or not (cancelled, missed, not booked)."
        ),
    },
    description="A participant's planned versus actual, for study monitoring, as CSV "
    "(coordinators, administrators, the participant's therapists; night attendants: 403; a "
    "participant you may not see: 404). The read is logged.",
)
class ParticipantPlannedVsActualApi(CsvApi):
    forbidden = "Your role does not export a participant's whole course."

    def get(self, request: Request, pk: int) -> StreamingHttpResponse:
        found = export_participant(request, pk)
        lines = selectors.planned_vs_actual(request.user, found)
        services.access_log_record(
            user=request.user,
            participant=found,
            door="api",
            route="participant-planned-vs-actual",
        )
        today = local(timezone.now(), found.site).date()
        filename = exports.participant_filename(found.site.slug, found.pk, today)
        return csv_response(exports.planned_vs_actual_csv(lines), filename, bom=False)
