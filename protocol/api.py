# mypy: allow-subclassing-any
# (rest_framework has no type stubs here, so its classes are Any to mypy.)
"""Read-only REST API of the protocol library. Protocols are global (not per site): every
signed-in user reads them. A protocol is named by its slug; without ``?version=N`` a request
means its active version."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from protocol.models import ProtocolVersion, SessionTemplate
from protocol.selectors import (
    ProtocolNotFound,
    protocol_document,
    protocol_version_get,
    protocol_versions_for_library,
)


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
    start_time = serializers.TimeField(
        format="%H:%M", help_text="Preferred local wall-clock time at the site (HH:MM, no offset)."
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


class VersionFilterSerializer(serializers.Serializer):
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


NOT_FOUND = OpenApiResponse(OpenApiTypes.OBJECT, description="No such protocol or version.")


class ProtocolListApi(APIView):
    @extend_schema(
        responses=ProtocolVersionOutputSerializer(many=True),
        tags=["protocols"],
        description="Every version of every protocol, newest version first within a protocol.",
    )
    def get(self, request: Request) -> Response:
        versions = protocol_versions_for_library()
        return Response(ProtocolVersionOutputSerializer(versions, many=True).data)


class ProtocolDetailApi(APIView):
    @extend_schema(
        parameters=[VersionFilterSerializer],
        responses={200: ProtocolVersionDetailOutputSerializer, 404: NOT_FOUND},
        tags=["protocols"],
    )
    def get(self, request: Request, slug: str) -> Response:
        version = _version(request, slug)
        return Response(ProtocolVersionDetailOutputSerializer(version).data)


class ProtocolExportApi(APIView):
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
