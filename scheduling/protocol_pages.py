"""The protocol library pages: every protocol version, each drawn as a timeline of its
templates with their windows (at target dates from a course start), and its JSON export.
Protocols are shared by all sites, so any signed-in staff member may read them. (Here, not in
protocol, because they draw with scheduling.timeline and protocol never imports scheduling.)"""

from __future__ import annotations

import json
from datetime import date, timedelta

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from protocol import spec as s
from protocol.forms import ProtocolImportForm
from protocol.models import ProtocolVersion
from protocol.selectors import (
    ProtocolNotFound,
    protocol_document,
    protocol_spec,
    protocol_version_get,
    protocol_versions_for_library,
)
from scheduling import access, timeline

#: a nominal course start for drawing a protocol (only offsets matter)
DAY_ZERO = date(2000, 1, 3)


def _readable(request: HttpRequest) -> None:
    """Protocols carry dose plans: a blinded assessor (or a user with no site) gets a 404."""
    if not access.allows(request.user, access.Action.VIEW, ProtocolVersion):
        raise Http404("No protocols for you here.")


@login_required
def library(request: HttpRequest) -> HttpResponse:
    _readable(request)
    context = {
        "nav": "protocols",
        "versions": protocol_versions_for_library(),
        "can_import": access.allows(request.user, access.Action.IMPORT, ProtocolVersion),
    }
    return render(request, "protocol/library.html", context)


@login_required
def version_import(request: HttpRequest) -> HttpResponse:
    """Import a protocol document, by default as the protocol's next (draft) version."""
    if not access.allows(request.user, access.Action.IMPORT, ProtocolVersion):
        raise Http404("Only administrators and coordinators import protocols.")
    form = ProtocolImportForm(request.POST or None, request.FILES or None)
    version = form.save() if request.method == "POST" and form.is_valid() else None
    if version is not None:
        return redirect("protocol-version", slug=version.protocol.slug, number=version.version)
    return render(request, "protocol/import.html", {"nav": "protocols", "form": form})


@login_required
def version_detail(request: HttpRequest, slug: str, number: int) -> HttpResponse:
    _readable(request)
    version = _version_or_404(slug, number)
    spec = protocol_spec(version)
    picture = timeline.build(_drawn(spec), today=DAY_ZERO - timedelta(days=1))
    context = {"nav": "protocols", "version": version, "spec": spec, "timeline": picture}
    return render(request, "protocol/version.html", context)


@login_required
def version_export(request: HttpRequest, slug: str, number: int) -> HttpResponse:
    _readable(request)
    version = _version_or_404(slug, number)
    response = HttpResponse(
        json.dumps(protocol_document(version), indent=2) + "\n", content_type="application/json"
    )
    response["Content-Disposition"] = f'attachment; filename="{slug}-v{number}.json"'
    return response


def _version_or_404(slug: str, number: int) -> ProtocolVersion:
    try:
        return protocol_version_get(slug=slug, version=number)
    except ProtocolNotFound:
        raise Http404("No such protocol version.") from None


def _drawn(spec: s.ProtocolSpec) -> list[timeline.TimelineSession]:
    """Each session at its target, with its window around its anchor's target."""
    offsets = s.target_offsets(spec)
    drawn = []
    for template in spec.sessions:
        anchor = (
            0
            if template.timing.anchor is None
            else offsets[spec.session(template.timing.anchor).occurrence_key(1)]
        )
        for i in range(template.repeat_count):
            shift = i * template.repeat_interval_days
            drawn.append(
                timeline.TimelineSession(
                    key=template.occurrence_key(i + 1),
                    title=template.title,
                    kind=template.kind.value,
                    day=DAY_ZERO + timedelta(days=offsets[template.occurrence_key(i + 1)]),
                    window_start=DAY_ZERO
                    + timedelta(days=anchor + template.timing.earliest_days + shift),
                    window_end=DAY_ZERO
                    + timedelta(days=anchor + template.timing.latest_days + shift),
                    overnight=template.overnight,
                    status="planned",
                )
            )
    return drawn
