# mypy: allow-subclassing-any
# (rest_framework has no type stubs here, so its classes are Any to mypy.)
"""Read-only REST API of the protocol library. Protocols are global (not per site), but they
hold dose plans: who may read them is the site access policy's answer, which config/urls.py
hands to these views as ``may_read`` (``protocol`` never imports ``scheduling``). Without it
nobody may, so a view wired up without the policy is closed, not open. A blinded remote
assessor gets 403 on every route here. A protocol is named by its slug; without
``?version=N`` a request means its active version."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import exceptions, generics, serializers
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from config.api import ApiSchema, ErrorSerializer, Pagination, QuerySerializer
from protocol.models import ProtocolVersion, SessionTemplate
from protocol.selectors import (
    ProtocolNotFound,
    protocol_document,
    protocol_version_get,
    protocol_versions_for_library,
)


def _nobody(user: Any) -> bool:
    return False


class MayRead(BasePermission):
    """The view's ``may_read(user)`` answers (the access policy, passed in by the urls)."""

    message = "Your role may not read protocols (they hold dose plans)."

    def has_permission(self, request: Request, view: Any) -> bool:
        return bool(view.may_read(request.user))


class ProtocolApi(generics.GenericAPIView):
    #: who may read protocols; config/urls.py passes scheduling.access's answer
    may_read: Callable[[Any], bool] = staticmethod(_nobody)
    permission_classes = [IsAuthenticated, MayRead]
    schema = ApiSchema()
    forbidden = MayRead.message + " (Blinded remote assessors.)"


#: "HH:MM", as the protocol document writes a preferred start time
WALL_CLOCK = "^([01][0-9]|2[0-3]):[0-5][0-9]$"


@extend_schema_field(
    {"type": "string", "pattern": WALL_CLOCK, "example": "09:00"}  # not "format: time"
)
class WallClockField(serializers.TimeField):
    """A local wall-clock time as HH:MM (no seconds, no offset)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(format="%H:%M", **kwargs)


class ProtocolVersionOutputSerializer(serializers.ModelSerializer):
    slug = serializers.CharField(source="protocol.slug")
    session_count = serializers.SerializerMethodField()

    class Meta:
        model = ProtocolVersion
        fields = [
            "slug",
            "version",
            "status",
            "name",
            "description",
            "investigational",
            "couples",
            "span_min_weeks",
            "span_max_weeks",
            "session_count",
            "created_at",
            "activated_at",
        ]

    def get_session_count(self, version: ProtocolVersion) -> int:
        # annotated by the library selector; counted for a single version
        count = getattr(version, "session_count", None)
        return count if count is not None else version.sessions.count()


class SessionTemplateOutputSerializer(serializers.ModelSerializer):
    start_time = WallClockField(
        help_text="Preferred local wall-clock time at the site (HH:MM, no offset)."
    )

    class Meta:
        model = SessionTemplate
        fields = [
            "position",
            "key",
            "title",
            "kind",
            "duration_minutes",
            "overnight",
            "start_time",
            "open_days_apply",
            "staffing",
            "room",
            "joint",
            "anchor_key",
            "next_morning",
            "target_days",
            "earliest_days",
            "latest_days",
            "repeat_count",
            "repeat_interval_days",
        ]


class ProtocolVersionDetailOutputSerializer(ProtocolVersionOutputSerializer):
    sessions = SessionTemplateOutputSerializer(many=True, read_only=True)

    class Meta(ProtocolVersionOutputSerializer.Meta):
        fields = [*ProtocolVersionOutputSerializer.Meta.fields, "sessions"]


class VersionFilterSerializer(QuerySerializer):
    version = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=2**31 - 1,
        help_text="A version number; default: the active version.",
    )


def _version(request: Request, slug: str) -> ProtocolVersion:
    """The requested version of protocol ``slug``, or 404 saying which exist."""
    params = VersionFilterSerializer(data=request.query_params)
    params.is_valid(raise_exception=True)
    try:
        return protocol_version_get(slug=slug, version=params.validated_data.get("version"))
    except ProtocolNotFound as exc:
        raise exceptions.NotFound(str(exc)) from exc


NOT_FOUND = OpenApiResponse(
    ErrorSerializer, description="No such protocol or version; the detail names those that exist."
)


@extend_schema(
    tags=["protocols"],
    description="Every version of every protocol, newest version first within a protocol.",
)
class ProtocolListApi(ProtocolApi, generics.ListAPIView):
    serializer_class = ProtocolVersionOutputSerializer
    pagination_class = Pagination

    def get_queryset(self) -> Any:
        return protocol_versions_for_library()


class ProtocolDetailApi(ProtocolApi):
    query_serializer = VersionFilterSerializer

    @extend_schema(
        parameters=[VersionFilterSerializer],
        responses={200: ProtocolVersionDetailOutputSerializer, 404: NOT_FOUND},
        tags=["protocols"],
    )
    def get(self, request: Request, slug: str) -> Response:
        version = _version(request, slug)
        return Response(ProtocolVersionDetailOutputSerializer(version).data)


class ProtocolExportApi(ProtocolApi):
    query_serializer = VersionFilterSerializer

    @extend_schema(
        parameters=[VersionFilterSerializer],
        responses={
            200: OpenApiResponse(
                OpenApiTypes.OBJECT,
                description="The protocol document (see protocol-document.schema.json); the "
                "admin's import reads it back.",
            ),
            404: NOT_FOUND,
        },
        tags=["protocols"],
    )
    def get(self, request: Request, slug: str) -> Response:
        version = _version(request, slug)
        document: dict[str, Any] = protocol_document(version)
        filename = f"{version.protocol.slug}-v{version.version}.json"
        return Response(
            document, headers={"Content-Disposition": f'attachment; filename="{filename}"'}
        )
