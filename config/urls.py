from django.contrib import admin
from django.http import HttpRequest, JsonResponse
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.authtoken.views import obtain_auth_token

from config import views
from protocol import api as protocol_api
from scheduling import api


def api_not_found(request: HttpRequest) -> JsonResponse:
    """Unknown paths under /api/ answer JSON too, like every other API error."""
    return JsonResponse({"detail": "Not found."}, status=404)


api_patterns = [
    path("auth/token/", obtain_auth_token, name="token"),
    path("sites/", api.SiteListApi.as_view(), name="sites"),
    path("sites/<int:pk>/", api.SiteDetailApi.as_view(), name="site"),
    path("rooms/", api.RoomListApi.as_view(), name="rooms"),
    path("rooms/<int:pk>/", api.RoomDetailApi.as_view(), name="room"),
    path("staff/", api.StaffListApi.as_view(), name="staff-list"),
    path("staff/<int:pk>/", api.StaffDetailApi.as_view(), name="staff"),
    path("dyads/", api.DyadListApi.as_view(), name="dyads"),
    path("dyads/<int:pk>/", api.DyadDetailApi.as_view(), name="dyad"),
    path("protocols/", protocol_api.ProtocolListApi.as_view(), name="protocols"),
    path("protocols/<slug:slug>/", protocol_api.ProtocolDetailApi.as_view(), name="protocol"),
    path(
        "protocols/<slug:slug>/export/",
        protocol_api.ProtocolExportApi.as_view(),
        name="protocol-export",
    ),
    path("participants/", api.ParticipantListApi.as_view(), name="participants"),
    path("participants/<int:pk>/", api.ParticipantDetailApi.as_view(), name="participant"),
    path(
        "participants/<int:pk>/sessions/",
        api.ParticipantSessionsApi.as_view(),
        name="participant-sessions",
    ),
    path("sessions/", api.SessionListApi.as_view(), name="sessions"),
    path("sessions/<int:pk>/", api.SessionDetailApi.as_view(), name="session"),
    path(
        "sessions/<int:pk>/reschedule/",
        api.SessionRescheduleApi.as_view(),
        name="session-reschedule",
    ),
    path("sessions/<int:pk>/cancel/", api.SessionCancelApi.as_view(), name="session-cancel"),
    path("sessions/<int:pk>/status/", api.SessionStatusApi.as_view(), name="session-status"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
    re_path(r"^.*/$", api_not_found),  # without the slash, APPEND_SLASH redirects
]

urlpatterns = [
    path("", views.landing, name="landing"),
    path("healthz", views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("api/", include((api_patterns, "api"))),
]
