from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from protocol.selectors import protocol_versions_for_library


def landing(request: HttpRequest) -> HttpResponse:
    """A short landing page until the staff pages arrive; it lists the loaded protocols."""
    versions = protocol_versions_for_library() if request.user.is_authenticated else []
    return render(request, "landing.html", {"versions": versions})


def healthz(request: HttpRequest) -> JsonResponse:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})
