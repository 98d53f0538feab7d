import json
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse

from protocol import services
from protocol.forms import ProtocolImportForm
from protocol.models import Protocol, ProtocolVersion, SessionTemplate
from protocol.selectors import protocol_document
from protocol.spec import ProtocolInvalid


class SessionTemplateInline(admin.StackedInline[SessionTemplate, ProtocolVersion]):
    model = SessionTemplate
    extra = 0
    fieldsets = [
        (
            None,
            {"fields": [("position", "key", "title"), ("kind", "duration_minutes", "start_time")]},
        ),
        (
            "Timing",
            {
                "fields": [
                    ("anchor_key", "next_morning"),
                    ("target_days", "earliest_days", "latest_days"),
                    ("repeat_count", "repeat_interval_days"),
                    ("open_days_apply", "overnight", "joint"),
                ]
            },
        ),
        ("Resources", {"fields": [("staffing", "room")]}),
        (
            "Dose plan (dosing sessions)",
            {
                "fields": [
                    ("initial_dose_mg", "supplemental_dose_mg", "supplemental"),
                    ("supplemental_from_minutes", "supplemental_until_minutes"),
                ]
            },
        ),
        ("For the participant", {"fields": ["preparation"]}),
        ("Reminders", {"fields": ["reminders"]}),
    ]

    def _editable(self, obj: ProtocolVersion | None) -> bool:
        return obj is None or obj.is_editable

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._editable(obj) and super().has_add_permission(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._editable(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._editable(obj) and super().has_delete_permission(request, obj)


@admin.register(ProtocolVersion)
class ProtocolVersionAdmin(admin.ModelAdmin[ProtocolVersion]):
    list_display = ["protocol", "version", "name", "status", "investigational", "activated_at"]
    list_filter = ["status", "protocol"]
    inlines = [SessionTemplateInline]
    actions = ["export_json", "new_draft", "activate", "retire"]
    readonly_fields = ["status", "activated_at", "created_at"]
    change_list_template = "admin/protocol/protocolversion/change_list.html"

    def get_urls(self) -> list[URLPattern]:
        extra = [
            path(
                "import/",
                self.admin_site.admin_view(self.import_view),
                name="protocol_protocolversion_import",
            )
        ]
        return extra + super().get_urls()

    def import_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_add_permission(request):
            return HttpResponse(status=403)
        form = ProtocolImportForm(request.POST or None, request.FILES or None)
        version = form.save() if request.method == "POST" and form.is_valid() else None
        if version is not None:
            self.message_user(request, f"Imported {version}.")
            return HttpResponseRedirect(
                reverse("admin:protocol_protocolversion_change", args=[version.pk])
            )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "form": form,
            "title": "Import a protocol",
        }
        return TemplateResponse(request, "admin/protocol/import.html", context)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is not None and not obj.is_editable:
            return [f.name for f in ProtocolVersion._meta.fields]
        return self.readonly_fields

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return (obj is None or obj.is_editable) and super().has_delete_permission(request, obj)

    @admin.action(description="Export as JSON")
    def export_json(
        self, request: HttpRequest, queryset: QuerySet[ProtocolVersion]
    ) -> HttpResponse:
        documents = [protocol_document(v) for v in queryset.select_related("protocol")]
        body = documents[0] if len(documents) == 1 else documents
        response = HttpResponse(json.dumps(body, indent=2) + "\n", content_type="application/json")
        name = (
            f"{documents[0]['slug']}-v{documents[0]['version']}"
            if len(documents) == 1
            else "protocols"
        )
        response["Content-Disposition"] = f'attachment; filename="{name}.json"'
        return response

    @admin.action(description="Copy into a new draft version")
    def new_draft(self, request: HttpRequest, queryset: QuerySet[ProtocolVersion]) -> None:
        for version in queryset:
            draft = services.protocol_version_new_draft(version=version)
            self.message_user(request, f"Created {draft}.")

    @admin.action(description="Activate (checks every rule)")
    def activate(self, request: HttpRequest, queryset: QuerySet[ProtocolVersion]) -> None:
        for version in queryset:
            try:
                services.protocol_version_activate(version=version)
            except (ProtocolInvalid, services.ImportRefused) as exc:
                self.message_user(request, f"{version}: {exc}", level=messages.ERROR)
            else:
                self.message_user(request, f"Activated {version}.")

    @admin.action(description="Retire")
    def retire(self, request: HttpRequest, queryset: QuerySet[ProtocolVersion]) -> None:
        for version in queryset:
            try:
                services.protocol_version_retire(version=version)
            except services.ImportRefused as exc:
                self.message_user(request, str(exc), level=messages.ERROR)


@admin.register(Protocol)
class ProtocolAdmin(admin.ModelAdmin[Protocol]):
    list_display = ["slug", "name", "created_at"]
    search_fields = ["slug", "name"]
