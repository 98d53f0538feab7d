"""The scheduling admin, for coordinators and support: sites and their resources can be edited;
participants' courses, sessions, bookings and deviations are read-only here, because changing
them means re-planning and re-booking (the services do that), and nothing clinical is deleted.
Every model with a history shows it (who, when, why)."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.admin.widgets import AutocompleteSelect
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group, User
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import DateTimeField, Model, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.utils.html import format_html
from django.views.decorators.debug import sensitive_post_parameters
from simple_history.template_utils import HistoricalRecordContextHelper

from protocol.admin import ProtocolAdmin, ProtocolVersionAdmin, SessionTemplateInline
from protocol.models import Protocol, ProtocolVersion, SessionTemplate
from scheduling import access, clock, outbox, publishing, selectors, services, validators
from scheduling.forms import SiteCalDavForm
from scheduling.models import (
    AccessLog,
    CheckInOutcome,
    Course,
    Deviation,
    Dyad,
    OpeningHours,
    Participant,
    Reminder,
    Room,
    RoomBooking,
    ScheduledSession,
    Site,
    SiteCalDav,
    SiteClosure,
    StaffBooking,
    StaffProfile,
    Unavailability,
)

M = TypeVar("M", bound=Model)
P = TypeVar("P", bound=Model)
Action = access.Action

if TYPE_CHECKING:  # simple_history has no type hints: describe the part used here

    class _HistoryAdmin(admin.ModelAdmin[M]):
        def history_view(
            self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
        ) -> HttpResponse: ...

        def history_form_view(
            self,
            request: HttpRequest,
            object_id: str,
            version_id: str,
            extra_context: dict[str, Any] | None = None,
        ) -> HttpResponse: ...

else:
    from simple_history.admin import SimpleHistoryAdmin as _HistoryAdmin


class LocalTimesHistoryHelper(HistoricalRecordContextHelper):  # type: ignore[misc]
    """The history table's "changes" column: a date-time that changed is shown as people
    read it, in the record's site's zone (else the active one) with the zone shown, not as
    the stored UTC value ("2027-01-05 14:00:00+00:00")."""

    def prepare_delta_change_value(self, change: Any, value: Any) -> Any:
        if isinstance(value, datetime):
            return clock.local_text(value, self.record)
        return super().prepare_delta_change_value(change, value)


def _scoped_choices(db_field: Any, request: HttpRequest, kwargs: dict[str, Any]) -> None:
    """A form's choices of another model: only what the user may see of it."""
    related = db_field.related_model
    if "queryset" not in kwargs and related in access.SITE_PATHS:
        kwargs["queryset"] = access.scope(related._default_manager.all(), request.user)


def local_column(field: str, description: str) -> Callable[[Any, Any], str]:
    """A list column showing the date-time ``field`` of each row in its own site's zone, with
    the zone shown ("Mon 1 Mar 2027 09:00 EST"): one list may hold several sites' rows."""

    @admin.display(description=description, ordering=field)
    def column(model_admin: Any, obj: Any) -> str:
        return clock.local_text(getattr(obj, field), obj)

    return column


def _in_zone_of(obj: Any, render: Callable[[], HttpResponse]) -> HttpResponse:
    """Render one object's page (its form's read-only times, its history table) in the zone
    of the object's site; the format shows the zone (config/formats)."""
    zone = clock.zone_of(obj)
    if zone is None:
        return render()
    with timezone.override(zone):
        response = render()
        if isinstance(response, TemplateResponse):
            response.render()  # now, while the site's zone is active
    return response


class PolicyMixin:
    """Every permission question of a model admin, answered by scheduling.access: lists and
    objects (another site's object is a 404), add, change, the choices in forms (and so the
    autocomplete behind them), and deletion, which only set-up rows allow."""

    model: Any  # the admin's model class
    #: the action that deletes (None: nothing is deleted here)
    delete_action: Action | None = None

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        queryset: QuerySet[Any] = super().get_queryset(request)  # type: ignore[misc]
        return access.scope(queryset, request.user)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return access.allows(request.user, Action.VIEW, self.model)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._may(request, Action.VIEW, obj)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._may(request, Action.CHANGE, obj)

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return access.allows(request.user, Action.ADD, self.model)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.delete_action is not None and self._may(request, self.delete_action, obj)

    def _may(self, request: HttpRequest, action: Action, obj: Any) -> bool:
        if obj is None:
            return access.allows(request.user, action, self.model)
        return access.can(request.user, action, obj)

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        _scoped_choices(db_field, request, kwargs)
        autocomplete = self.get_autocomplete_fields(request)  # type: ignore[attr-defined]
        if "widget" not in kwargs and db_field.name in autocomplete:
            site = self.admin_site  # type: ignore[attr-defined]
            kwargs["widget"] = SafeAutocompleteSelect(db_field, site, using=kwargs.get("using"))
        return super().formfield_for_foreignkey(db_field, request, **kwargs)  # type: ignore[misc]

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """A date-hierarchy year, month or day that is not a plausible number is answered as
        Django answers other bad filters (the list with ``?e=1``): Django's own list would
        overflow past 9999-12-31."""
        for name, value in request.GET.items():
            part = name.rsplit("__", 1)[-1]
            if part in ("year", "month", "day") and not _plausible(part, str(value)):
                return HttpResponseRedirect(f"{request.path}?e=1")
        return super().changelist_view(request, extra_context)  # type: ignore[misc, no-any-return]

    def formfield_for_manytomany(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        _scoped_choices(db_field, request, kwargs)
        return super().formfield_for_manytomany(db_field, request, **kwargs)  # type: ignore[misc]

    def formfield_for_dbfield(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        """A date-time entered here is read in the active zone (the object's site's, else
        that of the user's sites): the form says which."""
        field = super().formfield_for_dbfield(db_field, request, **kwargs)  # type: ignore[misc]
        if isinstance(db_field, DateTimeField) and field is not None:
            zone = timezone.get_current_timezone()
            local = clock.local(timezone.now(), zone)
            field.help_text = f"Local time in {zone} ({local:%Z})."
        return field


def _plausible(part: str, value: str) -> bool:
    if re.fullmatch(r"[0-9]{1,4}", value) is None:
        return False
    number = int(value)
    if part == "year":
        return validators.EARLIEST_YEAR <= number <= validators.LATEST_YEAR
    return 1 <= number <= (12 if part == "month" else 31)


class SafeAutocompleteSelect(AutocompleteSelect):
    """Django's autocomplete widget re-renders a refused value by looking it up, and a value
    that is no id at all ('abc') raised there: such a value is simply not shown again (the
    form already says it is not a valid choice)."""

    def optgroups(self, name: str, value: Sequence[str], attrs: Any = None) -> Any:
        to_python = self.field.remote_field.model._meta.pk.to_python
        return super().optgroups(name, [v for v in value if _is_id(to_python, v)], attrs)


def _is_id(to_python: Any, value: str) -> bool:
    try:
        to_python(value)
    except (ValidationError, ValueError, TypeError):
        return False
    return str(value).isascii()


class HistoryAdmin(PolicyMixin, _HistoryAdmin[M]):
    """The history pages of simple-history behind the policy. Its own views fall back to the
    stored history of an object the user may not see, and its history form saves a POSTed
    revert: here both are refused. The audit history is read-only; changes go through the
    object's own form (or the services)."""

    def history_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        obj = self._visible(request, object_id)
        return _in_zone_of(
            obj, lambda: super(HistoryAdmin, self).history_view(request, object_id, extra_context)
        )

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        obj = self.get_object(request, unquote(object_id))
        return _in_zone_of(
            obj,
            lambda: super(HistoryAdmin, self).change_view(
                request, object_id, form_url, extra_context
            ),
        )

    def get_historical_record_context_helper(
        self, request: HttpRequest, historical_record: Any
    ) -> LocalTimesHistoryHelper:
        return LocalTimesHistoryHelper(self.model, historical_record)

    def history_form_view(
        self,
        request: HttpRequest,
        object_id: str,
        version_id: str,
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        if request.method not in ("GET", "HEAD"):
            raise PermissionDenied("The audit history is read-only.")
        obj = self._visible(request, object_id)
        history = obj.history  # type: ignore[attr-defined]
        known = re.fullmatch(r"[0-9]{1,18}", version_id) is not None  # not '²' nor 40 digits
        if not known or not history.filter(history_id=version_id).exists():
            raise Http404("No such version of this record.")
        return _in_zone_of(
            obj,
            lambda: super(HistoryAdmin, self).history_form_view(
                request, object_id, version_id, extra_context
            ),
        )

    def _visible(self, request: HttpRequest, object_id: str) -> Model:
        obj = self.get_object(request, unquote(object_id))  # None for a bad or hidden id
        if obj is None or not self.has_view_permission(request, obj):
            raise Http404("No such record.")
        return obj


class ClinicalRecordAdmin(HistoryAdmin[M]):
    """Read-only: written by enrolment, rescheduling and status changes, never deleted."""

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class PolicyInline(PolicyMixin, admin.TabularInline[P, M]):
    """An inline asks the policy about its own rows: what the user may see of them, and
    whether they may change them (add and delete included) on this parent."""

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return access.allows(request.user, Action.VIEW, self.model)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._on_parent(request, obj)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._on_parent(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._on_parent(request, obj)

    def _on_parent(self, request: HttpRequest, parent: Any) -> bool:
        if not access.allows(request.user, Action.CHANGE, self.model):
            return False
        return parent is None or access.can(request.user, Action.CHANGE, parent)


# --- sites and resources -------------------------------------------------------------------


class OpeningHoursInline(PolicyInline[OpeningHours, Site]):
    model = OpeningHours
    extra = 0


class SiteClosureInline(PolicyInline[SiteClosure, Site]):
    model = SiteClosure
    extra = 0


class SiteCalDavInline(PolicyInline[SiteCalDav, Site]):
    """The site's CalDAV publishing (scheduling.publishing). The password is write-only: the
    page says whether one is set, never what it is; saved through the service, so that a
    change republishes the site's sessions."""

    model = SiteCalDav
    form = SiteCalDavForm
    template = "admin/edit_inline/stacked.html"
    fields = ["url", "username", "password", "password_state", "enabled"]
    readonly_fields = ["password_state"]
    extra = 0
    max_num = 1
    can_delete = False  # switched off with "enabled": the collection keeps what it has

    @admin.display(description="password")
    def password_state(self, obj: SiteCalDav | None) -> str:
        return "set" if obj is not None and obj.password else "not set"


@admin.register(Site)
class SiteAdmin(HistoryAdmin[Site]):
    list_display = [
        "name",
        "slug",
        "timezone",
        "country",
        "subdivision",
        "phone",
        "allow_out_of_hours_moves",
    ]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [OpeningHoursInline, SiteClosureInline, SiteCalDavInline]

    @method_decorator(sensitive_post_parameters("caldav-0-password"))
    def changeform_view(self, *args: Any, **kwargs: Any) -> HttpResponse:
        """The CalDAV inline's password never shows in an error report of this page."""
        return super().changeform_view(*args, **kwargs)

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        """A closure date added here leads to the sessions it conflicts with, as one added on
        its own page does. CalDAV settings are saved by their service."""
        if formset.model is SiteCalDav:
            self._save_caldav(request, formset)
            return
        super().save_formset(request, form, formset, change)
        for closure in getattr(formset, "new_objects", []):
            if isinstance(closure, SiteClosure) and selectors.closure_conflicts(
                closure, request.user
            ):
                url = reverse("admin:scheduling_siteclosure_conflicts", args=[closure.pk])
                messages.warning(
                    request,
                    format_html(
                        'Open sessions need the site open on {}: <a href="{}">check and '
                        "re-plan them</a>.",
                        _day(closure.date),
                        url,
                    ),
                )

    def _save_caldav(self, request: HttpRequest, formset: Any) -> None:
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        for inline_form in formset.forms:
            if not inline_form.has_changed():
                continue
            data = inline_form.cleaned_data
            saved = publishing.site_caldav_set(
                site=formset.instance,
                url=data["url"],
                username=data["username"],
                password=data["password"],
                enabled=data["enabled"],
                by=request.user if isinstance(request.user, User) else None,
            )
            formset.changed_objects.append((saved, ["CalDAV settings"]))


@admin.register(OpeningHours)
class OpeningHoursAdmin(PolicyMixin, admin.ModelAdmin[OpeningHours]):
    """A site's hours, one row per open weekday (also editable on the site's page)."""

    delete_action = Action.CHANGE  # a weekday the site no longer opens
    list_display = ["site", "weekday", "opens", "closes"]
    list_filter = [("site", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["site"]


@admin.register(SiteClosure)
class SiteClosureAdmin(PolicyMixin, admin.ModelAdmin[SiteClosure]):
    """Closure dates. A new one lists the open sessions it conflicts with and offers to
    re-plan them in one step (preview, then apply: ``services.closure_replan``)."""

    delete_action = Action.CHANGE  # a date entered by mistake
    list_display = ["date", "site", "reason", "conflicts"]
    list_filter = [("site", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["site"]
    date_hierarchy = "date"

    @admin.display(description="sessions on that day")
    def conflicts(self, closure: SiteClosure) -> str:
        url = reverse("admin:scheduling_siteclosure_conflicts", args=[closure.pk])
        return format_html('<a href="{}">Check and re-plan</a>', url)

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view(self.conflicts_view)
        mine = [path("<path:object_id>/conflicts/", view, name="scheduling_siteclosure_conflicts")]
        return mine + super().get_urls()

    def response_add(
        self, request: HttpRequest, obj: SiteClosure, post_url_continue: str | None = None
    ) -> HttpResponse:
        onward = "_continue" in request.POST or "_addanother" in request.POST
        if not onward and selectors.closure_conflicts(obj, request.user):
            messages.warning(request, "Open sessions need the site open that day: see below.")
            url = reverse("admin:scheduling_siteclosure_conflicts", args=[obj.pk])
            return HttpResponseRedirect(url)
        return super().response_add(request, obj, post_url_continue)

    def conflicts_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """GET previews re-planning the sessions the closure conflicts with; POST applies it."""
        closure = self.get_object(request, unquote(object_id))  # None: hidden or no such id
        if closure is None:
            raise Http404("No such closure date.")
        if not self.has_change_permission(request, closure):
            raise PermissionDenied("Only the site's coordinators re-plan its sessions.")
        if request.method == "POST":
            done = services.closure_replan(closure=closure, by=_user(request), dry_run=False)
            for line in _replan_lines(done, done.replanned):
                messages.success(request, line)
            for line in _replan_lines(done, done.refused):
                messages.warning(request, line)
            if not done.items:
                messages.info(request, "No open session conflicts with this closure any more.")
            return HttpResponseRedirect(request.path)
        preview = services.closure_replan(closure=closure, by=_user(request), dry_run=True)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Sessions on {_day(closure.date)}: the site is closed",
            "closure": closure,
            "zone": closure.site.timezone,
            "rows": [_replan_row(preview, item) for item in preview.items],
            "movable": len(preview.replanned),
        }
        return TemplateResponse(request, "admin/scheduling/siteclosure/conflicts.html", context)


def _user(request: HttpRequest) -> User | None:
    return request.user if isinstance(request.user, User) else None


def _day(day: date) -> str:
    return f"{day:%a} {day.day} {day:%b %Y}"


def _replan_row(result: services.ClosureReplan, item: services.ClosureItem) -> dict[str, str]:
    zone = result.closure.site.timezone
    session = item.session
    if item.moved_along:
        outcome = f"moves with {item.moved_along}"
    elif item.new_start is not None:
        moved = item.moved if item.moved is not None else session
        which = "" if moved.pk == session.pk else f"{moved.key} (its night before) "
        outcome = f"{which}to {selectors.local_text(item.new_start, zone)}"
        if item.with_it:
            outcome += f", with {item.with_it} session{'s' * (item.with_it != 1)} planned from it"
    else:
        outcome = f"cannot be re-planned: {item.problem}"
    return {
        "code": session.course.participant.code,
        "session": f"{session.title} ({session.key})",
        "when": selectors.local_text(session.start, zone),
        "outcome": outcome,
        "url": reverse("session", kwargs={"pk": session.pk}),
        "refused": "" if item.new_start is not None or item.moved_along else "yes",
    }


def _replan_lines(result: services.ClosureReplan, items: list[services.ClosureItem]) -> list[str]:
    lines = []
    for item in items:
        row = _replan_row(result, item)
        lines.append(f"{row['code']} {row['session']}, {row['when']}: {row['outcome']}")
    return lines


@admin.register(Room)
class RoomAdmin(HistoryAdmin[Room]):
    list_display = ["name", "site", "kind", "overnight_places", "active"]
    list_filter = [("site", admin.RelatedOnlyFieldListFilter), "kind", "active"]
    list_select_related = ["site"]
    search_fields = ["name"]


@admin.register(StaffProfile)
class StaffProfileAdmin(HistoryAdmin[StaffProfile]):
    list_display = ["user", "role"]
    list_filter = ["role", ("sites", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["user"]
    search_fields = ["user__username", "user__first_name", "user__last_name"]
    autocomplete_fields = ["user"]
    filter_horizontal = ["sites"]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """A person who also works at a site the user does not coordinate is not theirs to
        change: the role is one for all their sites, and the form could not show the rest."""
        if not super().has_change_permission(request, obj):
            return False
        mine = access.user_site_ids(request.user)
        if obj is None or mine is None:
            return True
        return set(obj.sites.values_list("pk", flat=True)) <= mine

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        """A new role or new sites: escalations and staff reminders of the open sessions at
        the sites before and after follow at once (the sites are saved here, after the
        profile)."""
        before = {getattr(site, "pk", site) for site in form.initial.get("sites", [])}
        super().save_related(request, form, formsets, change)
        after = set(form.instance.sites.values_list("pk", flat=True))
        outbox.sites_reminders_resync(site_ids=before | after)


@admin.register(Dyad)
class DyadAdmin(HistoryAdmin[Dyad]):
    list_display = ["name", "site", "therapist_a", "therapist_b", "active"]
    list_filter = [("site", admin.RelatedOnlyFieldListFilter), "active"]
    list_select_related = ["site", "therapist_a", "therapist_b"]
    search_fields = ["name"]
    autocomplete_fields = ["therapist_a", "therapist_b"]


@admin.register(Unavailability)
class UnavailabilityAdmin(HistoryAdmin[Unavailability]):
    delete_action = Action.CHANGE  # a period entered by mistake
    list_display = ["user", "start", "end", "reason"]
    list_select_related = ["user"]
    search_fields = ["user__username", "reason"]
    date_hierarchy = "start"
    autocomplete_fields = ["user"]


# --- participants and their courses --------------------------------------------------------


@admin.register(Participant)
class ParticipantAdmin(HistoryAdmin[Participant]):
    """Contact details can be corrected here; enrolment and status go through the services."""

    list_display = ["code", "site", "status", "preferred_channel", "created"]
    list_filter = [("site", admin.RelatedOnlyFieldListFilter), "status"]
    created = local_column("created_at", "created at")
    list_select_related = ["site"]
    search_fields = ["code"]
    # consent and the pause: with their source and reason through the participant page
    # (outbox's services), never a date typed in here
    readonly_fields = [
        "site",
        "code",
        "status",
        "partner",
        "created_at",
        "email_consent_at",
        "sms_consent_at",
        "reminders_paused_at",
        "reminders_pause_reason",
    ]

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False  # enrolment books a course: the Enrol page or the API

    def save_model(self, request: HttpRequest, obj: Participant, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        # a new channel or contact: the reminders of their sessions ahead follow, at once
        outbox.participant_reminders_resync(participant=obj)

    def get_exclude(self, request: HttpRequest, obj: Any = None) -> Any:
        # the arm is for the unblinded site team only, as the policy says
        if access.allows(request.user, Action.CHANGE, Participant):
            return super().get_exclude(request, obj)
        return ["arm_code"]

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        response = super().change_view(request, object_id, form_url, extra_context)
        self._log_read(request, object_id, "admin:participant-change")
        return response

    def history_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        response = super().history_view(request, object_id, extra_context)
        self._log_read(request, object_id, "admin:participant-history")
        return response

    def _log_read(self, request: HttpRequest, object_id: str, route: str) -> None:
        found = self.get_object(request, unquote(object_id))
        if found is not None:
            services.access_log_record(
                user=request.user, participant=found, door="admin", route=route
            )


class SessionInline(PolicyInline[ScheduledSession, Course]):
    model = ScheduledSession
    fields = ("key", "kind", "start", "end", "window_start", "window_end", "status", "room")
    readonly_fields = fields
    ordering = ["start", "key"]
    extra = 0
    can_delete = False
    show_change_link = True

    def _on_parent(self, request: HttpRequest, parent: Any) -> bool:
        return False  # sessions move and change status through the services

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).select_related("room")


@admin.register(Course)
class CourseAdmin(ClinicalRecordAdmin[Course]):
    list_display = ["id", "participant", "partner", "protocol_version", "dyad", "start_date"]
    list_filter = [
        "status",
        ("participant__site", admin.RelatedOnlyFieldListFilter),
        "protocol_version",
    ]
    list_select_related = ["participant", "partner", "protocol_version__protocol", "dyad"]
    search_fields = ["participant__code", "partner__code"]
    date_hierarchy = "start_date"
    inlines = [SessionInline]


@admin.register(ScheduledSession)
class ScheduledSessionAdmin(ClinicalRecordAdmin[ScheduledSession]):
    list_display = ["key", "participant", "starts", "ends", "kind", "status", "room"]
    list_filter = [
        "status",
        "kind",
        ("course__participant__site", admin.RelatedOnlyFieldListFilter),
    ]
    list_select_related = ["course__participant__site", "room"]
    starts = local_column("start", "start")
    ends = local_column("end", "end")
    search_fields = ["course__participant__code", "key"]
    date_hierarchy = "start"

    @admin.display(ordering="course__participant__code")
    def participant(self, session: ScheduledSession) -> str:
        return session.course.participant.code


@admin.register(Deviation)
class DeviationAdmin(ClinicalRecordAdmin[Deviation]):
    list_display = ["session_when", "kind", "reason", "created_by", "created"]
    list_filter = ["kind"]
    list_select_related = ["session__course__participant__site", "created_by"]
    created = local_column("created_at", "recorded at")

    @admin.display(description="session", ordering="session__start")
    def session_when(self, deviation: Deviation) -> str:
        session = deviation.session
        return f"{session.key}, {clock.local_text(session.start, session)}"

    search_fields = ["session__course__participant__code", "reason"]


@admin.register(RoomBooking)
class RoomBookingAdmin(ClinicalRecordAdmin[RoomBooking]):
    list_display = ["room", "session_key", "begins", "ends", "active"]
    list_filter = [
        "active",
        ("room__site", admin.RelatedOnlyFieldListFilter),
        ("room", admin.RelatedOnlyFieldListFilter),
    ]
    list_select_related = ["room__site", "session"]
    begins = local_column("begin", "from")
    ends = local_column("until", "until")

    @admin.display(description="session", ordering="session__key")
    def session_key(self, booking: RoomBooking) -> str:
        return booking.session.key

    date_hierarchy = "begin"


@admin.register(StaffBooking)
class StaffBookingAdmin(ClinicalRecordAdmin[StaffBooking]):
    list_display = ["user", "session_key", "begins", "ends", "active"]
    list_filter = ["active"]
    list_select_related = ["user", "session__course__participant__site"]
    begins = local_column("begin", "from")
    ends = local_column("until", "until")

    @admin.display(description="session", ordering="session__key")
    def session_key(self, booking: StaffBooking) -> str:
        return booking.session.key

    search_fields = ["user__username"]
    date_hierarchy = "begin"


@admin.register(AccessLog)
class AccessLogAdmin(PolicyMixin, admin.ModelAdmin[AccessLog]):
    """Who read which participant's record, when and through which door: for the site's
    administrators (the compliance officer)."""

    list_display = ["when", "user", "participant", "door", "route"]
    list_filter = ["door", ("participant__site", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["user", "participant__site"]
    when = local_column("at", "at")
    search_fields = ["participant__code", "user__username"]
    date_hierarchy = "at"

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # a log is only read

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False


# --- the outbox and check-ins --------------------------------------------------------------


@admin.register(Reminder)
class ReminderAdmin(PolicyMixin, admin.ModelAdmin[Reminder]):
    """The outbox: every reminder, moved notice and check-in escalation, planned, sent, failed,
    skipped or cancelled, with why. Read-only: rows are planned with their sessions and sent by
    the worker. A failed one can be sent again (the action), never edited or deleted."""

    list_display = [
        "due",
        "session_key",
        "recipient",
        "purpose",
        "channel",
        "status",
        "reason",
        "attempts",
        "sent",
    ]
    list_filter = [
        "status",
        "channel",
        "purpose",
        ("site", admin.RelatedOnlyFieldListFilter),
        ("due_at", admin.DateFieldListFilter),
    ]
    list_select_related = ["site", "session", "participant", "staff"]
    search_fields = ["idempotency_key"]
    date_hierarchy = "due_at"
    due = local_column("due_at", "due")
    sent = local_column("sent_at", "sent")
    actions = ["send_again"]

    @admin.display(description="session", ordering="session__start")
    def session_key(self, reminder: Reminder) -> str:
        return reminder.session.key

    @admin.display(description="to")
    def recipient(self, reminder: Reminder) -> str:
        if reminder.participant is not None:
            return reminder.participant.code
        return clock.display_name(reminder.staff)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # rows are planned and sent by the services and the worker

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_send_again_permission(self, request: HttpRequest) -> bool:
        return access.allows(request.user, Action.CHANGE, Reminder)

    @admin.action(
        description="Send the selected failed reminders again now", permissions=["send_again"]
    )
    def send_again(self, request: HttpRequest, queryset: QuerySet[Reminder]) -> None:
        """Failed rows back to pending, due now, with who asked: the sweep picks them up within
        a minute and the send task checks them again (moved, too late, consent). Only failed
        rows the user may change; the others are left as they are."""
        mine = access.scope(queryset, request.user, Action.CHANGE)
        by = clock.display_name(request.user)
        count = mine.filter(status=Reminder.Status.FAILED).update(
            status=Reminder.Status.PENDING,
            due_at=timezone.now(),
            attempts=0,
            claim=None,
            lease_until=None,
            reason=f"retried by {by}",
            updated_at=timezone.now(),
        )
        skipped = queryset.count() - count
        said = f"{count} failed reminder{'s' * (count != 1)} will be sent again within a minute."
        if skipped:
            said += f" {skipped} not failed (or not yours to resend) were left as they are."
        self.message_user(request, said, messages.SUCCESS if count else messages.WARNING)

    def get_actions(self, request: HttpRequest) -> Any:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions


@admin.register(CheckInOutcome)
class CheckInOutcomeAdmin(ClinicalRecordAdmin[CheckInOutcome]):
    """What each phone check-in came to, as recorded on Today or through the API."""

    list_display = ["session_when", "outcome", "note", "recorded_by", "recorded"]
    list_filter = [
        "outcome",
        ("session__course__participant__site", admin.RelatedOnlyFieldListFilter),
    ]
    list_select_related = ["session__course__participant__site", "recorded_by"]
    recorded = local_column("recorded_at", "recorded at")
    search_fields = ["session__course__participant__code"]
    date_hierarchy = "recorded_at"

    @admin.display(description="check-in", ordering="session__start")
    def session_when(self, row: CheckInOutcome) -> str:
        session = row.session
        when = clock.local_text(session.start, session)
        return f"{session.course.participant.code} {session.key}, {when}"


# --- people, protocols and other apps' models --------------------------------------------


admin.site.unregister(User)
admin.site.unregister(Group)


@admin.register(User)
class StaffUserAdmin(PolicyMixin, UserAdmin):  # type: ignore[type-arg]
    """People the user works with (their sites), for reading and for the choices of staff
    and dyad forms (the autocomplete asks this admin). Accounts are created and changed by
    superusers only: a role is not a way to grant another one."""

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(getattr(request.user, "is_superuser", False))

    has_add_permission = has_delete_permission = has_change_permission


@admin.register(Group)
class SuperuserGroupAdmin(GroupAdmin):
    """Django's permission groups play no part in the policy: superusers only."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return bool(getattr(request.user, "is_superuser", False))

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_module_permission(request)

    has_change_permission = has_add_permission = has_delete_permission = has_view_permission


class PolicySessionTemplateInline(SessionTemplateInline):
    """Protocol templates: read by the roles that may read protocols (never a blinded
    assessor: they hold dose plans), edited in drafts by those who may import."""

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return access.allows(request.user, Action.VIEW, SessionTemplate)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        editable = obj is None or obj.is_editable
        return editable and access.allows(request.user, Action.IMPORT, SessionTemplate)

    has_add_permission = has_delete_permission = has_change_permission


class ProtocolPolicyMixin:
    """Protocols are shared by every site (the protocol app knows nothing of sites and roles):
    the policy is applied here, around the protocol app's own admin."""

    model: Any

    def has_module_permission(self, request: HttpRequest) -> bool:
        return access.allows(request.user, Action.VIEW, self.model)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return access.allows(request.user, Action.VIEW, self.model)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        editable = obj is None or getattr(obj, "is_editable", True)
        return editable and access.allows(request.user, Action.IMPORT, self.model)

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return access.allows(request.user, Action.IMPORT, self.model)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return obj is not None and self.has_change_permission(request, obj)


admin.site.unregister(ProtocolVersion)
admin.site.unregister(Protocol)


@admin.register(ProtocolVersion)
class PolicyProtocolVersionAdmin(ProtocolPolicyMixin, ProtocolVersionAdmin):
    inlines = [PolicySessionTemplateInline]

    def get_actions(self, request: HttpRequest) -> Any:
        actions = super().get_actions(request)
        if not access.allows(request.user, Action.IMPORT, ProtocolVersion):
            # exporting shows dose plans too: a reader may do it; the rest write
            for name in ("new_draft", "activate", "retire", "delete_selected"):
                actions.pop(name, None)
        return actions


@admin.register(Protocol)
class PolicyProtocolAdmin(ProtocolPolicyMixin, ProtocolAdmin):
    pass


class SuperuserOnly:
    """Models outside the policy (other apps' security records: lockouts, two-factor
    devices, API tokens): superusers only."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return bool(getattr(request.user, "is_superuser", False))

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_module_permission(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_module_permission(request)

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return self.has_module_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_module_permission(request)


def restrict_unlisted(site: admin.AdminSite) -> None:
    """Put every model admin the policy does not cover behind superusers only (called once
    every app's admin module is loaded), so no model reaches the admin without a rule."""
    for model, model_admin in list(site._registry.items()):
        if model in access.RULES or isinstance(model_admin, SuperuserOnly):
            continue
        if model is Group:
            continue
        restricted = type(
            f"SuperuserOnly{type(model_admin).__name__}", (SuperuserOnly, type(model_admin)), {}
        )
        site.unregister(model)
        site.register(model, restricted)
