"""The admin in the site's zone: the admin lists objects of the user's sites and renders their
times in the active zone, so it is the zone of the user's sites (when they all share one), not
the server's UTC. The staff pages always name their site and its zone themselves."""

from __future__ import annotations

from collections.abc import Callable
from zoneinfo import ZoneInfo

from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils import timezone

from scheduling import access
from scheduling.models import Site


class SiteZoneMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        zone = _admin_zone(request) if request.path.startswith(reverse("admin:index")) else None
        if zone is None:
            return self.get_response(request)
        with timezone.override(zone):
            return self.get_response(request)


def _admin_zone(request: HttpRequest) -> ZoneInfo | None:
    """The one zone of the user's sites; None (the server's UTC, shown as such) for a
    visitor or when their sites lie in different zones."""
    user = request.user
    if not user.is_authenticated:
        return None
    sites = access.scope(Site.objects.all(), user)
    zones = list(sites.order_by().values_list("timezone", flat=True).distinct()[:2])
    return ZoneInfo(zones[0]) if len(zones) == 1 else None
