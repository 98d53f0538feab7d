# mypy: allow-subclassing-any
"""bench/api.py's urlconf: every product route, plus ``/bench/bare/``: a DRF view with the
API's authentication and permission classes (the REST_FRAMEWORK defaults) that does nothing,
the floor an API request costs before it reads anything."""

from __future__ import annotations

from typing import Any

from django.urls import path
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.urls import urlpatterns as product_urlpatterns


class BareApi(APIView):
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return Response({"detail": "ok"})


urlpatterns = [path("bench/bare/", BareApi.as_view()), *product_urlpatterns]
