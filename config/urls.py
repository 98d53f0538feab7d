from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, JsonResponse
from django.urls import include, path, re_path, register_converter
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from config import two_factor, views
from config.auth_api import TokenApi
from protocol import api as protocol_api
from scheduling import (
    api,
    calendar_api,
    calendar_views,
    export_api,
    export_views,
    feed_views,
    feeds,
    publishing_views,
    reminder_views,
)
from scheduling import protocol_pages as protocol_views
from scheduling import views as scheduling_views


class IdConverter:
    """Database ids: at most 18 digits, so a huge number is a 404, not a database overflow."""

    regex = "[0-9]{1,18}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return str(value)


register_converter(IdConverter, "id")


@csrf_exempt  # an unknown path is a JSON 404 for every method, not a CSRF page
def api_not_found(request: HttpRequest) -> JsonResponse:
    """Unknown paths under /api/ answer JSON too, like every other API error. Matching every
    path (slash or not) also keeps Django from redirecting a POST to the slash URL."""
    detail = "Not found."
    if not request.path.endswith("/"):
        detail += " API paths end with a slash."
    return JsonResponse({"detail": detail}, status=404)


api_patterns = [
    path("auth/token/", TokenApi.as_view(), name="token"),
    path("sites/", api.SiteListApi.as_view(), name="sites"),
    path("sites/<id:pk>/", api.SiteDetailApi.as_view(), name="site"),
    path("rooms/", api.RoomListApi.as_view(), name="rooms"),
    path("rooms/<id:pk>/", api.RoomDetailApi.as_view(), name="room"),
    path("staff/", api.StaffListApi.as_view(), name="staff-list"),
    path("staff/<id:pk>/", api.StaffDetailApi.as_view(), name="staff"),
    path("dyads/", api.DyadListApi.as_view(), name="dyads"),
    path("dyads/<id:pk>/", api.DyadDetailApi.as_view(), name="dyad"),
    # the protocol library asks the access policy (protocol never imports scheduling)
    path(
        "protocols/",
        protocol_api.ProtocolListApi.as_view(may_read=api.reads_protocols),
        name="protocols",
    ),
    path(
        "protocols/<slug:slug>/",
        protocol_api.ProtocolDetailApi.as_view(may_read=api.reads_protocols),
        name="protocol",
    ),
    path(
        "protocols/<slug:slug>/export/",
        protocol_api.ProtocolExportApi.as_view(may_read=api.reads_protocols),
        name="protocol-export",
    ),
    path("participants/", api.ParticipantListApi.as_view(), name="participants"),
    path("participants/<id:pk>/", api.ParticipantDetailApi.as_view(), name="participant"),
    path(
        "participants/<id:pk>/sessions/",
        api.ParticipantSessionsApi.as_view(),
        name="participant-sessions",
    ),
    path(
        "participants/<id:pk>/reminders/",
        api.ParticipantRemindersApi.as_view(),
        name="participant-reminders",
    ),
    path("sessions/", api.SessionListApi.as_view(), name="sessions"),
    path("sessions/<id:pk>/", api.SessionDetailApi.as_view(), name="session"),
    path(
        "sessions/<id:pk>/reschedule/",
        api.SessionRescheduleApi.as_view(),
        name="session-reschedule",
    ),
    path("sessions/<id:pk>/cancel/", api.SessionCancelApi.as_view(), name="session-cancel"),
    path("sessions/<id:pk>/status/", api.SessionStatusApi.as_view(), name="session-status"),
    path("sessions/<id:pk>/rebook/", api.SessionRebookApi.as_view(), name="session-rebook"),
    path(
        "sessions/<id:pk>/checkin-outcome/",
        api.SessionCheckinOutcomeApi.as_view(),
        name="session-checkin-outcome",
    ),
    path(
        "participants/<id:pk>/withdraw/",
        api.ParticipantWithdrawApi.as_view(),
        name="participant-withdraw",
    ),
    path("courses/<id:pk>/end/", api.CourseEndApi.as_view(), name="course-end"),
    path(
        "sites/<id:pk>/sessions-export/",
        export_api.SiteSessionsExportApi.as_view(),
        name="site-sessions-export",
    ),
    path(
        "participants/<id:pk>/planned-vs-actual/",
        export_api.ParticipantPlannedVsActualApi.as_view(),
        name="participant-planned-vs-actual",
    ),
    # calendars (.ics): the same exports as the pages' downloads
    path(
        "participants/<id:pk>/calendar.ics",
        calendar_api.ParticipantCalendarApi.as_view(),
        name="calendar-participant",
    ),
    path(
        "staff/<id:pk>/calendar.ics",
        calendar_api.StaffCalendarApi.as_view(),
        name="calendar-staff",
    ),
    path(
        "rooms/<id:pk>/calendar.ics", calendar_api.RoomCalendarApi.as_view(), name="calendar-room"
    ),
    path(
        "sites/<id:pk>/calendar.ics", calendar_api.SiteCalendarApi.as_view(), name="calendar-site"
    ),
    path("me/calendar.ics", calendar_api.MyCalendarApi.as_view(), name="calendar-mine"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    # the split view serves its start-up script as a file: no inline script under the CSP
    path(
        "docs/",
        SpectacularSwaggerSplitView.as_view(
            url_name="api:schema", template_name="api/swagger_ui.html"
        ),
        name="docs",
    ),
    re_path(r"^[\s\S]*$", api_not_found),  # newlines too
]

urlpatterns = [
    path("", scheduling_views.landing, name="landing"),
    path("today/", scheduling_views.today, name="today"),
    path("participants/", scheduling_views.participants, name="participants"),
    path("calendar/", scheduling_views.site_calendar, name="calendar"),
    path("participants/new/", scheduling_views.participant_new, name="participant-new"),
    path("participants/<id:pk>/", scheduling_views.participant, name="participant"),
    path(
        "participants/<id:pk>/schedule/",
        scheduling_views.participant_schedule,
        name="participant-schedule",
    ),
    path(
        "participants/<id:pk>/reminder-settings/",
        reminder_views.participant_reminder_settings,
        name="participant-reminder-settings",
    ),
    path(
        "participants/<id:pk>/planned-vs-actual/",
        export_views.participant_planned_vs_actual,
        name="participant-planned-vs-actual",
    ),
    path("exports/", export_views.exports_page, name="exports"),
    path(
        "exports/sites/<id:pk>/sessions/",
        export_views.site_sessions_export,
        name="site-sessions-export",
    ),
    path("hooks/sms/", reminder_views.sms_inbound, name="hook-sms"),
    path(
        "calendars/participant/<id:pk>.ics",
        calendar_views.participant_calendar,
        name="calendar-participant",
    ),
    path("calendars/staff/<id:pk>.ics", calendar_views.staff_calendar, name="calendar-staff"),
    path("calendars/room/<id:pk>.ics", calendar_views.room_calendar, name="calendar-room"),
    path("calendars/site/<id:pk>.ics", calendar_views.site_calendar, name="calendar-site"),
    path("calendars/mine.ics", calendar_views.my_calendar, name="calendar-mine"),
    path("me/", calendar_views.me, name="me"),
    path("sites/<id:pk>/caldav/", publishing_views.site_caldav, name="site-caldav"),
    path("calendar-feeds/", feed_views.calendar_feeds, name="calendar-feeds"),
    path(
        "calendar-feeds/<id:pk>/revoke/",
        feed_views.calendar_feed_revoke,
        name="calendar-feed-revoke",
    ),
    path(
        "participants/<id:pk>/calendar-feed/",
        feed_views.participant_calendar_feed,
        name="participant-calendar-feed",
    ),
    # no login: the secret token is the credential (never logged: config.security)
    re_path(rf"^feeds/(?P<token>{feeds.TOKEN_PATTERN})\.ics$", feeds.feed, name="feed"),
    path("sessions/<id:pk>/", scheduling_views.session_detail, name="session"),
    path("sessions/<id:pk>/checkin/", scheduling_views.session_checkin, name="session-checkin"),
    path("protocols/", protocol_views.library, name="protocols"),
    path("protocols/import/", protocol_views.version_import, name="protocol-import"),
    path(
        "protocols/<slug:slug>/v<int:number>/",
        protocol_views.version_detail,
        name="protocol-version",
    ),
    path(
        "protocols/<slug:slug>/v<int:number>/export/",
        protocol_views.version_export,
        name="protocol-export",
    ),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("login/two-factor/", two_factor.two_factor, name="two-factor"),
    path("healthz", views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("api/", include((api_patterns, "api"))),
]
