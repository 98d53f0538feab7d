# mypy: allow-subclassing-any
# (rest_framework and drf_spectacular have no type stubs here, so their classes are Any.)
"""What every REST API view shares, whichever app it belongs to (``protocol`` never imports
``scheduling``, so it lives here): the pagination, the error shapes and the schema class that
documents them on every operation, and strict query parameters.

- Lists are pages: ``?page=N`` (from 1) and ``?page_size=N`` (1 to 200, default 50), answered as
  ``{"count", "next", "previous", "results"}``. A page number or size that is not a whole
  number in range is a 400 field error; a page after the last one is a 404.
- Errors: ``{"detail": "..."}`` (401, 403, 404, 409, and a 400 for a body that is not JSON) or
  field errors ``{"field": ["message", ...]}`` (400).
- A query parameter given empty (``?room=``) is a 400 field error, never silently ignored."""

from __future__ import annotations

from typing import Any

from django.core.paginator import Paginator
from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse
from rest_framework import exceptions, serializers
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request

PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
#: the largest number a query parameter that counts pages may hold
MAX_PAGE = 2**31 - 1


# --- error shapes ----------------------------------------------------------------------------


class ErrorSerializer(serializers.Serializer):
    """What every error but a field error answers."""

    detail = serializers.CharField(help_text="What went wrong, in words.")


class FieldErrorsSerializer(serializers.Serializer):
    """Field errors: each input field named in the request (or ``non_field_errors``) with its
    messages. A body that is not a JSON object answers ``{"detail": "..."}`` instead. Mapped
    to its schema by ``FieldErrorsSchema`` (a serializer cannot say "any key")."""


class FieldErrorsSchema(OpenApiSerializerExtension):  # type: ignore[no-untyped-call]
    target_class = FieldErrorsSerializer

    def map_serializer(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        return {
            "type": "object",
            "description": (
                "Each field in error with its messages, e.g. "
                '{"code": ["Use the study code: letters, digits and - _ . only."]}; '
                'a body that is not JSON: {"detail": "JSON parse error - ..."}.'
            ),
            "properties": {"detail": {"type": "string"}},
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
        }


# --- strict query parameters -----------------------------------------------------------------


class QuerySerializer(serializers.Serializer):
    """Query parameters where an empty value (``?room=``) is an error: DRF would read it as
    absent, and a client that meant to filter would get everything."""

    def to_internal_value(self, data: Any) -> Any:
        blank = {
            name: ["Give a value, or leave the parameter out."]
            for name in self.fields
            if hasattr(data, "get") and name in data and str(data.get(name)).strip() == ""
        }
        if blank:
            raise exceptions.ValidationError(blank)
        return super().to_internal_value(data)


class PageQuerySerializer(QuerySerializer):
    page = serializers.IntegerField(required=False, min_value=1, max_value=MAX_PAGE)
    page_size = serializers.IntegerField(required=False, min_value=1, max_value=MAX_PAGE_SIZE)


# --- pagination ------------------------------------------------------------------------------


class FirstPageFirst(Paginator[Any]):
    """Django's paginator, reading the first page once: one more row than a page is read (with
    its prefetches). If it does not come, the page's length is the count and no COUNT query
    runs (a site's rooms, dyads, staff, one participant's sessions); if it does, the rows read
    are the page and only the count is asked for, rather than the page a second time."""

    def page(self, number: Any) -> Any:
        if str(number) == "1" and "count" not in self.__dict__:
            rows = list(self.object_list[: self.per_page + 1])
            if len(rows) <= self.per_page:
                self.__dict__["count"] = len(rows)  # fills the cached_property
            return self._get_page(rows[: self.per_page], 1, self)  # type: ignore[attr-defined]
        return super().page(number)


class Pagination(PageNumberPagination):
    """Page-number pages of 50 (``page_size`` up to 200); bad numbers are field errors."""

    django_paginator_class = FirstPageFirst
    page_size = PAGE_SIZE
    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE
    last_page_strings = ()  # "last" is not a number: a field error like any other word

    def _query(self, request: Request) -> dict[str, int]:
        params = getattr(request, "_page_query", None)
        if params is None:
            checked = PageQuerySerializer(data=request.query_params)
            checked.is_valid(raise_exception=True)
            params = dict(checked.validated_data)
            request._page_query = params
        return params

    def get_page_size(self, request: Request) -> int:
        return self._query(request).get("page_size", self.page_size)

    def get_page_number(self, request: Request, paginator: Paginator[Any]) -> int:
        return self._query(request).get("page", 1)

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        return [
            {
                "name": "page",
                "required": False,
                "in": "query",
                "description": "A page number, from 1; after the last page: 404.",
                "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE},
            },
            {
                "name": "page_size",
                "required": False,
                "in": "query",
                "description": f"Results per page; default {PAGE_SIZE}, at most {MAX_PAGE_SIZE}.",
                "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE},
            },
        ]

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "object",
            "required": ["count", "next", "previous", "results"],
            "properties": {
                "count": {"type": "integer", "minimum": 0, "example": 123},
                "next": {
                    "type": "string",
                    "nullable": True,
                    "format": "uri",
                    "description": "The next page, or null on the last.",
                    "example": "https://clinic.example.org/api/participants/?page=3",
                },
                "previous": {
                    "type": "string",
                    "nullable": True,
                    "format": "uri",
                    "description": "The previous page, or null on the first.",
                    "example": "https://clinic.example.org/api/participants/?page=1",
                },
                "results": schema,
            },
        }


# --- the schema: every operation documents the errors it can answer ---------------------------

UNAUTHENTICATED = OpenApiResponse(
    ErrorSerializer,
    description="No credentials, or a token that is wrong or expired.",
)
BAD_INPUT = OpenApiResponse(FieldErrorsSerializer, description="Field errors; nothing written.")
FORBIDDEN_WRITE = OpenApiResponse(
    ErrorSerializer,
    description="Your role may not do this (to this object), or a session-authenticated "
    "request without its CSRF token; nothing written.",
)
NOT_FOUND = OpenApiResponse(
    ErrorSerializer,
    description="No such object among those you may see (another site's is the same 404).",
)
NO_SUCH_PAGE = OpenApiResponse(ErrorSerializer, description="No such page: after the last one.")


class ApiSchema(AutoSchema):
    """drf-spectacular's schema plus the error responses each operation can give: 401 always
    (every route needs a signed-in user), 400 where there is input (a body or query
    parameters), 403 on writes and on views that name a ``forbidden`` reason, 404 on an
    object's route or a page after the last. What a view documents itself is kept."""

    def _get_response_bodies(self, direction: Any = "response") -> dict[str, Any]:
        responses: dict[str, Any] = super()._get_response_bodies(direction)
        for code, response in self._error_responses().items():
            if code not in responses:
                responses[code] = self._get_response_for_code(  # type: ignore[no-untyped-call]
                    response, code, direction=direction
                )
        return responses

    def _error_responses(self) -> dict[str, OpenApiResponse]:
        paginated = self._get_paginator()  # type: ignore[no-untyped-call]
        listing = self.method == "GET" and self._is_list_view() and paginated is not None
        writes = self.method not in ("GET", "HEAD", "OPTIONS")
        found: dict[str, OpenApiResponse] = {}
        if writes or listing or getattr(self.view, "query_serializer", None) is not None:
            found["400"] = BAD_INPUT
        found["401"] = UNAUTHENTICATED
        forbidden: str | None = getattr(self.view, "forbidden", None)
        if forbidden:
            found["403"] = OpenApiResponse(ErrorSerializer, description=forbidden)
        elif writes:
            found["403"] = FORBIDDEN_WRITE
        if "{" in self.path:
            found["404"] = NOT_FOUND
        elif listing:
            found["404"] = NO_SUCH_PAGE
        return found
