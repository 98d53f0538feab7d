"""Protocol rows and the services that write them: export/import, immutability of active
versions, activation, retirement, and loading the shipped protocols."""

from __future__ import annotations

import copy
import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db.models import ProtectedError

from protocol import services
from protocol.models import Protocol, ProtocolLocked, ProtocolVersion, SessionTemplate
from protocol.selectors import protocol_document, protocol_spec, protocol_version_get
from protocol.services import (
    ImportRefused,
    protocol_import,
    protocol_version_activate,
    protocol_version_new_draft,
    protocol_version_retire,
    shipped_protocols_load,
)
from protocol.spec import ProtocolInvalid
from scheduling.models import Course, Participant, Site
from scheduling.services import participant_enrol
from tests.conftest import shipped_document

pytestmark = pytest.mark.django_db

SLUGS = ["mapp-ptsd", "mdma-cbct-couples"]


def counts() -> tuple[int, int, int]:
    return (
        Protocol.objects.count(),
        ProtocolVersion.objects.count(),
        SessionTemplate.objects.count(),
    )


def session_rows(version: ProtocolVersion) -> list[dict[str, Any]]:
    rows = SessionTemplate.objects.filter(version=version).order_by("position").values()
    return [{k: v for k, v in row.items() if k not in {"id", "version_id"}} for row in rows]


def version_row(version: ProtocolVersion) -> dict[str, Any]:
    row = ProtocolVersion.objects.filter(pk=version.pk).values().first()
    assert row is not None
    return dict(row)


def mapp_v1() -> ProtocolVersion:
    return ProtocolVersion.objects.get(protocol__slug="mapp-ptsd", version=1)


# --- export and import ---------------------------------------------------------------------


@pytest.mark.parametrize("slug", SLUGS)
def test_export_equals_the_shipped_file(slug: str) -> None:
    version = protocol_version_get(slug=slug)
    assert version.status == "active"
    assert protocol_document(version) == shipped_document(slug)


@pytest.mark.parametrize("slug", SLUGS)
def test_import_as_new_version_makes_a_draft_copy(slug: str) -> None:
    v1 = ProtocolVersion.objects.get(protocol__slug=slug, version=1)
    v2 = protocol_import(document=shipped_document(slug), as_new_version=True)
    assert (v2.version, v2.status) == (2, "draft")
    assert v2.protocol_id == v1.protocol_id
    assert session_rows(v2) == session_rows(v1)
    assert len(session_rows(v2)) == len(shipped_document(slug)["sessions"])
    v1.refresh_from_db()
    assert v1.status == "active"  # the import does not touch the active version
    expected = shipped_document(slug) | {"version": 2, "status": "draft"}
    assert protocol_document(v2) == expected


def test_import_of_an_existing_version_is_refused_and_writes_nothing() -> None:
    before = counts()
    with pytest.raises(ImportRefused, match="mapp-ptsd version 1 exists already"):
        protocol_import(document=shipped_document("mapp-ptsd"))
    assert counts() == before


def test_import_of_a_new_version_number_with_status_active_retires_the_old_one() -> None:
    document = shipped_document("mapp-ptsd") | {"version": 5}
    v5 = protocol_import(document=document)
    assert (v5.version, v5.status) == (5, "active")
    assert mapp_v1().status == "retired"
    assert ProtocolVersion.objects.filter(protocol__slug="mapp-ptsd", status="active").count() == 1


def test_import_of_an_invalid_document_writes_nothing() -> None:
    document = shipped_document("mapp-ptsd") | {"slug": "brand-new", "version": 1}
    document["sessions"][1]["timing"]["target_days"] = 30  # window [3, 14]
    document["sessions"][4]["dose_plan"] = None  # a dosing session without a plan
    before = counts()
    with pytest.raises(ProtocolInvalid) as caught:
        protocol_import(document=document)
    assert len(caught.value.problems) == 2
    assert counts() == before
    assert not Protocol.objects.filter(slug="brand-new").exists()


def test_import_is_atomic_when_activation_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    """A failure after the rows are written (here: in activation) leaves nothing behind."""

    def refuse(*, version: ProtocolVersion) -> ProtocolVersion:
        raise ProtocolInvalid(["refused for the test"])

    monkeypatch.setattr(services, "protocol_version_activate", refuse)
    document = shipped_document("mapp-ptsd") | {"slug": "brand-new"}
    before = counts()
    with pytest.raises(ProtocolInvalid):
        protocol_import(document=document)
    assert counts() == before


def test_import_of_a_new_protocol() -> None:
    document = shipped_document("mapp-ptsd") | {"slug": "site-copy", "status": "draft"}
    version = protocol_import(document=document)
    assert (version.protocol.slug, version.version, version.status) == ("site-copy", 1, "draft")
    assert protocol_document(version) == document


# --- immutability of active versions -------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [("name", "Renamed"), ("span_max_weeks", 30), ("couples", True), ("description", "")],
)
def test_active_version_fields_are_locked(field: str, value: Any) -> None:
    version = mapp_v1()
    before = version_row(version)
    setattr(version, field, value)
    with pytest.raises(ProtocolLocked):
        version.save()
    assert version_row(version) == before


def test_active_version_cannot_go_back_to_draft() -> None:
    version = mapp_v1()
    before = version_row(version)
    version.status = "draft"
    with pytest.raises(ProtocolLocked):
        version.save()
    assert version_row(version) == before


def test_sessions_of_an_active_version_are_locked() -> None:
    version = mapp_v1()
    rows = session_rows(version)
    session = SessionTemplate.objects.get(version=version, key="dosing-1")
    session.initial_dose_mg = session.initial_dose_mg * 2  # type: ignore[operator]
    with pytest.raises(ProtocolLocked):
        session.save()
    with pytest.raises(ProtocolLocked):
        SessionTemplate.objects.get(version=version, key="prep-2").delete()
    extra = SessionTemplate.objects.get(version=version, key="closing")
    extra.pk = None
    extra.key = "closing-2"
    extra.position = 99
    with pytest.raises(ProtocolLocked):
        extra.save()
    assert session_rows(version) == rows


def test_active_version_cannot_be_deleted() -> None:
    version = mapp_v1()
    before = counts()
    with pytest.raises(ProtocolLocked):
        version.delete()
    assert counts() == before
    assert protocol_document(mapp_v1()) == shipped_document("mapp-ptsd")


def test_active_to_retired_is_allowed_but_not_back() -> None:
    version = protocol_version_retire(version=mapp_v1())
    assert mapp_v1().status == "retired"
    with pytest.raises(ImportRefused):
        protocol_version_retire(version=version)
    version.status = "active"
    with pytest.raises(ProtocolLocked):
        version.save()
    assert mapp_v1().status == "retired"
    with pytest.raises(ProtocolLocked):
        mapp_v1().delete()
    # a retired version is as immutable as an active one
    retired = mapp_v1()
    retired.name = "Renamed"
    with pytest.raises(ProtocolLocked):
        retired.save()


# --- drafts and activation -----------------------------------------------------------------


def test_new_draft_can_be_edited_and_activated() -> None:
    v1 = mapp_v1()
    v2 = protocol_version_new_draft(version=v1)
    assert (v2.version, v2.status) == (2, "draft")
    assert session_rows(v2) == session_rows(v1)

    v2.name = "Site variant"
    v2.save()
    session = SessionTemplate.objects.get(version=v2, key="dosing-2")
    session.initial_dose_mg = session.initial_dose_mg - 20  # type: ignore[operator]
    session.save()
    SessionTemplate.objects.get(version=v2, key="follow-up").delete()

    activated = protocol_version_activate(version=v2)
    assert activated.status == "active"
    assert activated.activated_at is not None
    v1.refresh_from_db()
    assert v1.status == "retired"
    active = ProtocolVersion.objects.filter(protocol__slug="mapp-ptsd", status="active")
    assert list(active) == [v2]
    assert protocol_version_get(slug="mapp-ptsd") == v2

    spec = protocol_spec(v2)
    assert spec.name == "Site variant"
    plan = spec.session("dosing-2").dose_plan
    assert plan is not None
    assert plan.initial_mg == 100
    assert "follow-up" not in {s.key for s in spec.sessions}
    # v1 is untouched by all this
    assert protocol_document(v1) == shipped_document("mapp-ptsd") | {"status": "retired"}


def test_activating_an_active_version_is_refused() -> None:
    with pytest.raises(ImportRefused):
        protocol_version_activate(version=mapp_v1())


def test_activating_an_invalid_draft_fails_and_it_stays_a_draft() -> None:
    v2 = protocol_version_new_draft(version=mapp_v1())
    session = SessionTemplate.objects.get(version=v2, key="prep-2")
    session.target_days = session.latest_days + 1
    session.save()
    with pytest.raises(ProtocolInvalid) as caught:
        protocol_version_activate(version=v2)
    assert len(caught.value.problems) == 1
    assert caught.value.problems[0].startswith("prep-2: ")
    v2.refresh_from_db()
    assert (v2.status, v2.activated_at) == ("draft", None)
    assert mapp_v1().status == "active"


def test_activation_rejects_what_the_document_format_rejects() -> None:
    v2 = protocol_version_new_draft(version=mapp_v1())
    session = SessionTemplate.objects.get(version=v2, key="closing")
    session.repeat_count = 0
    session.save()
    with pytest.raises(ProtocolInvalid):
        protocol_version_activate(version=v2)
    v2.refresh_from_db()
    assert v2.status == "draft"


def test_activation_of_next_morning_without_anchor_is_a_protocol_problem() -> None:
    v2 = protocol_version_new_draft(version=mapp_v1())
    session = SessionTemplate.objects.get(version=v2, key="integration-1a")
    session.anchor_key = ""
    session.save()
    with pytest.raises(ProtocolInvalid):
        protocol_version_activate(version=v2)


def test_courses_keep_their_version(site_a: Site, coordinator_a: User) -> None:
    v1 = mapp_v1()
    course = participant_enrol(
        site=site_a,
        code="P-001",
        protocol_slug="mapp-ptsd",
        start_date=date(2027, 3, 1),
        by=coordinator_a,
    )
    planned = list(course.sessions.values_list("key", "start"))
    v1_sessions = session_rows(v1)

    v2 = protocol_version_new_draft(version=v1)
    session = SessionTemplate.objects.get(version=v2, key="prep-2")
    session.target_days = 10
    session.save()
    protocol_version_activate(version=v2)

    course.refresh_from_db()
    assert course.protocol_version_id == v1.pk
    assert course.protocol_version.status == "retired"
    assert session_rows(course.protocol_version) == v1_sessions
    assert protocol_spec(course.protocol_version).session("prep-2").timing.target_days == 7
    assert list(course.sessions.values_list("key", "start")) == planned

    with pytest.raises(ProtocolLocked):
        course.protocol_version.delete()
    with pytest.raises(ProtectedError):
        ProtocolVersion.objects.filter(pk=v1.pk).delete()
    assert session_rows(mapp_v1()) == v1_sessions


def test_a_draft_used_by_a_course_cannot_be_deleted(site_a: Site) -> None:
    v2 = protocol_version_new_draft(version=mapp_v1())
    participant = Participant.objects.create(site=site_a, code="P-002")
    Course.objects.create(participant=participant, protocol_version=v2, start_date=date(2027, 3, 1))
    before = counts()
    with pytest.raises(ProtectedError):
        v2.delete()
    assert counts() == before


def test_an_unused_draft_can_be_deleted_with_its_sessions() -> None:
    v2 = protocol_version_new_draft(version=mapp_v1())
    n = SessionTemplate.objects.filter(version=v2).count()
    assert n == len(shipped_document("mapp-ptsd")["sessions"])
    before = counts()
    v2.delete()
    assert counts() == (before[0], before[1] - 1, before[2] - n)


# --- the shipped protocols -----------------------------------------------------------------


def test_loading_the_shipped_protocols_again_changes_nothing() -> None:
    before = counts()
    first = shipped_protocols_load()
    second = shipped_protocols_load()
    assert [(r.slug, r.version, r.outcome) for r in first] == [
        ("mapp-ptsd", 1, "unchanged"),
        ("mdma-cbct-couples", 1, "unchanged"),
    ]
    assert second == first
    assert counts() == before


def test_a_retired_shipped_version_is_still_unchanged() -> None:
    protocol_version_retire(version=mapp_v1())
    outcomes = {r.slug: r.outcome for r in shipped_protocols_load()}
    assert outcomes["mapp-ptsd"] == "unchanged"
    assert mapp_v1().status == "retired"


def write_shipped(directory: Path, *documents: dict[str, Any]) -> None:
    directory.mkdir(exist_ok=True)
    for document in documents:
        (directory / f"{document['slug']}.json").write_text(json.dumps(document, indent=2))


def test_a_changed_shipped_file_differs_and_the_stored_version_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    changed = shipped_document("mapp-ptsd")
    changed["sessions"][1]["timing"]["target_days"] = 8
    write_shipped(tmp_path, changed)
    monkeypatch.setattr(services, "SHIPPED_DIR", tmp_path)
    before = counts()
    results = shipped_protocols_load()
    assert [(r.slug, r.version, r.outcome) for r in results] == [("mapp-ptsd", 1, "differs")]
    assert counts() == before
    assert protocol_document(mapp_v1()) == shipped_document("mapp-ptsd")


def test_a_missing_shipped_protocol_is_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    new = copy.deepcopy(shipped_document("mdma-cbct-couples")) | {"slug": "couples-site-b"}
    write_shipped(tmp_path, shipped_document("mapp-ptsd"), new)
    monkeypatch.setattr(services, "SHIPPED_DIR", tmp_path)
    before = counts()
    results = shipped_protocols_load()
    assert [(r.slug, r.outcome) for r in results] == [
        ("couples-site-b", "created"),
        ("mapp-ptsd", "unchanged"),
    ]
    n = len(new["sessions"])
    assert counts() == (before[0] + 1, before[1] + 1, before[2] + n)
    created = protocol_version_get(slug="couples-site-b")
    assert created.status == "active"
    assert protocol_document(created) == new
    # and a second run finds it
    again = shipped_protocols_load()
    assert [(r.slug, r.outcome) for r in again] == [
        ("couples-site-b", "unchanged"),
        ("mapp-ptsd", "unchanged"),
    ]
    assert counts() == (before[0] + 1, before[1] + 1, before[2] + n)
