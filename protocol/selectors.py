"""Reads of protocol templates."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, QuerySet

from protocol import spec as s
from protocol.models import ProtocolVersion, SessionTemplate


class ProtocolNotFound(LookupError):
    pass


def protocol_versions_for_library() -> QuerySet[ProtocolVersion]:
    return (
        ProtocolVersion.objects.select_related("protocol")
        .annotate(session_count=Count("sessions"))
        .order_by("protocol__slug", "-version")
    )


def protocol_version_get(*, slug: str, version: int | None = None) -> ProtocolVersion:
    """The given version of a protocol, or its active one; ProtocolNotFound says what exists."""
    versions = ProtocolVersion.objects.select_related("protocol").filter(protocol__slug=slug)
    found = (
        versions.filter(version=version).first()
        if version is not None
        else versions.filter(status=s.Status.ACTIVE).first()
    )
    if found is not None:
        return found
    if not versions.exists():
        known = ", ".join(
            ProtocolVersion.objects.values_list("protocol__slug", flat=True)
            .distinct()
            .order_by("protocol__slug")
        )
        raise ProtocolNotFound(f"unknown protocol '{slug}' (known: {known or 'none'})")
    numbers = ", ".join(
        str(v) for v in versions.order_by("version").values_list("version", flat=True)
    )
    if version is not None:
        raise ProtocolNotFound(f"protocol '{slug}' has no version {version} (versions: {numbers})")
    raise ProtocolNotFound(
        f"protocol '{slug}' has no active version (versions: {numbers}); name one with --version"
    )


def protocol_spec(version: ProtocolVersion) -> s.ProtocolSpec:
    """The pure spec the planner reads, from the stored rows."""
    templates = SessionTemplate.objects.filter(version=version).order_by("position")
    return s.ProtocolSpec(
        slug=version.protocol.slug,
        name=version.name,
        version=version.version,
        status=s.Status(version.status),
        investigational=version.investigational,
        couples=version.couples,
        description=version.description,
        span_min_weeks=version.span_min_weeks,
        span_max_weeks=version.span_max_weeks,
        sessions=tuple(_session_spec(t) for t in templates),
        checkin_escalation_hours=version.checkin_escalation_hours,
    )


def protocol_document(version: ProtocolVersion) -> dict[str, Any]:
    """The JSON export of a version (see protocol-document.schema.json)."""
    return s.to_document(protocol_spec(version))


def _session_spec(t: SessionTemplate) -> s.SessionSpec:
    anchor = t.anchor_key or None
    if t.next_morning:  # an empty anchor is reported by validation, not assumed away
        timing = s.Timing(anchor, 1, 1, 1, next_morning=True)
    else:
        timing = s.Timing(anchor, t.target_days, t.earliest_days, t.latest_days)
    return s.SessionSpec(
        key=t.key,
        title=t.title,
        kind=s.Kind(t.kind),
        duration_minutes=t.duration_minutes,
        overnight=t.overnight,
        start_time=t.start_time,
        open_days_apply=t.open_days_apply,
        staffing=s.Staffing(t.staffing),
        room=s.RoomNeed(t.room),
        joint=t.joint,
        preparation=t.preparation,
        timing=timing,
        repeat_count=t.repeat_count,
        repeat_interval_days=t.repeat_interval_days,
        dose_plan=_dose_plan(t),
        reminders=tuple(s.parse_rule(rule) for rule in t.reminders),
    )


def _dose_plan(t: SessionTemplate) -> s.DosePlan | None:
    if t.initial_dose_mg is None:
        return None
    window = None
    if t.supplemental_from_minutes is not None and t.supplemental_until_minutes is not None:
        window = (t.supplemental_from_minutes, t.supplemental_until_minutes)
    return s.DosePlan(
        initial_mg=t.initial_dose_mg,
        supplemental_mg=t.supplemental_dose_mg,
        supplemental_window_minutes=window,
        supplemental=s.Supplemental(t.supplemental or s.Supplemental.NONE),
    )
