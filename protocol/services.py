"""Writes to protocol templates: import, new draft versions, activation, retirement, and the
shipped protocols."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from django.db import transaction
from django.utils import timezone

from protocol import spec as s
from protocol.models import Protocol, ProtocolVersion, SessionTemplate
from protocol.selectors import protocol_spec

SHIPPED_DIR = Path(__file__).with_name("shipped")


class ImportRefused(ValueError):
    """The document is valid but cannot be stored as asked (e.g. its version number is taken)."""


@transaction.atomic
def protocol_import(*, document: Any, as_new_version: bool = False) -> ProtocolVersion:
    """Store a protocol document as a version. Raises ProtocolInvalid (every problem listed) or
    ImportRefused, and stores nothing then.

    With ``as_new_version`` the document becomes the next version number, as a draft: the way
    a clinic adapts a shared protocol before activating it.
    """
    spec = s.parse_document(document)
    protocol, _ = Protocol.objects.select_for_update().get_or_create(
        slug=spec.slug, defaults={"name": spec.name}
    )
    taken = ProtocolVersion.objects.filter(protocol=protocol, version=spec.version).exists()
    if as_new_version:
        latest = ProtocolVersion.objects.filter(protocol=protocol).order_by("-version").first()
        spec = replace(spec, version=(latest.version + 1) if latest else 1, status=s.Status.DRAFT)
    elif taken:
        raise ImportRefused(
            f"{spec.slug} version {spec.version} exists already; import it as a new version instead"
        )
    return _store(protocol, spec)


def _store(protocol: Protocol, spec: s.ProtocolSpec) -> ProtocolVersion:
    version = ProtocolVersion.objects.create(
        protocol=protocol,
        version=spec.version,
        status=s.Status.DRAFT,
        name=spec.name,
        description=spec.description,
        investigational=spec.investigational,
        couples=spec.couples,
        span_min_weeks=spec.span_min_weeks,
        span_max_weeks=spec.span_max_weeks,
        checkin_escalation_hours=spec.checkin_escalation_hours,
    )
    SessionTemplate.objects.bulk_create(
        _template_row(version, position, session)
        for position, session in enumerate(spec.sessions, start=1)
    )
    if spec.status == s.Status.ACTIVE:
        return protocol_version_activate(version=version)
    if spec.status == s.Status.RETIRED:
        version.status = s.Status.RETIRED
        version.save(update_fields=["status"])
    return version


def _template_row(
    version: ProtocolVersion, position: int, session: s.SessionSpec
) -> SessionTemplate:
    dose = session.dose_plan
    window = dose.supplemental_window_minutes if dose else None
    return SessionTemplate(
        version=version,
        position=position,
        key=session.key,
        title=session.title,
        kind=session.kind.value,
        duration_minutes=session.duration_minutes,
        overnight=session.overnight,
        start_time=session.start_time,
        open_days_apply=session.open_days_apply,
        staffing=session.staffing.value,
        room=session.room.value,
        joint=session.joint,
        preparation=session.preparation,
        anchor_key=session.timing.anchor or "",
        next_morning=session.timing.next_morning,
        target_days=session.timing.target_days,
        earliest_days=session.timing.earliest_days,
        latest_days=session.timing.latest_days,
        repeat_count=session.repeat_count,
        repeat_interval_days=session.repeat_interval_days,
        initial_dose_mg=dose.initial_mg if dose else None,
        supplemental_dose_mg=dose.supplemental_mg if dose else None,
        supplemental_from_minutes=window[0] if window else None,
        supplemental_until_minutes=window[1] if window else None,
        supplemental=dose.supplemental.value if dose else "",
        reminders=[s.rule_document(rule) for rule in session.reminders],
    )


@transaction.atomic
def protocol_version_new_draft(*, version: ProtocolVersion) -> ProtocolVersion:
    """A draft copy of ``version`` with the next number: how an active protocol is changed."""
    protocol = Protocol.objects.select_for_update().get(pk=version.protocol_id)
    latest = ProtocolVersion.objects.filter(protocol=protocol).order_by("-version").first()
    assert latest is not None
    spec = replace(protocol_spec(version), version=latest.version + 1, status=s.Status.DRAFT)
    return _store(protocol, spec)


@transaction.atomic
def protocol_version_activate(*, version: ProtocolVersion) -> ProtocolVersion:
    """Check the draft against every rule, then make it the protocol's active version; the
    previously active version is retired (its courses keep it)."""
    version = (
        ProtocolVersion.objects.select_for_update().select_related("protocol").get(pk=version.pk)
    )
    if version.status != s.Status.DRAFT:
        raise ImportRefused(f"{version} is not a draft; only drafts can be activated")
    # The same checks as an import (document shape, then rules), so an active version always
    # exports a document that imports again.
    s.parse_document(s.to_document(protocol_spec(version)))
    for previous in ProtocolVersion.objects.select_for_update().filter(
        protocol_id=version.protocol_id, status=s.Status.ACTIVE
    ):
        protocol_version_retire(version=previous)
    version.status = s.Status.ACTIVE
    version.activated_at = timezone.now()
    version.save(update_fields=["status", "activated_at"])
    return version


def protocol_version_retire(*, version: ProtocolVersion) -> ProtocolVersion:
    if version.status != s.Status.ACTIVE:
        raise ImportRefused(f"{version} is not active; only an active version can be retired")
    version.status = s.Status.RETIRED
    version.save(update_fields=["status"])
    return version


@dataclass(frozen=True)
class LoadResult:
    slug: str
    version: int
    outcome: str  # "created", "unchanged" or "differs"


def shipped_protocols_load() -> list[LoadResult]:
    """Make sure every shipped protocol is present. Idempotent: a version that exists already is
    left as it is (it may be active, and courses may use it), and a difference is reported."""
    results = []
    for path in sorted(SHIPPED_DIR.glob("*.json")):
        document = json.loads(path.read_text())
        results.append(_load_one(document))
    return results


@transaction.atomic
def _load_one(document: dict[str, Any]) -> LoadResult:
    slug, number = document["slug"], document["version"]
    existing = ProtocolVersion.objects.filter(protocol__slug=slug, version=number).first()
    if existing is None:
        protocol_import(document=document)
        return LoadResult(slug, number, "created")
    # status is left out: staff may have retired a shipped version since it was loaded
    stored = s.to_document(protocol_spec(existing)) | {"status": None}
    same = stored == s.to_document(s.parse_document(document)) | {"status": None}
    return LoadResult(slug, number, "unchanged" if same else "differs")
