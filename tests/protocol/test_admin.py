"""The protocol admin: pages render, active versions are read-only, and the actions."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse

from protocol.models import ProtocolVersion, SessionTemplate
from protocol.selectors import protocol_document
from tests.conftest import shipped_document

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:protocol_protocolversion_changelist"


def mapp_v1() -> ProtocolVersion:
    return ProtocolVersion.objects.get(protocol__slug="mapp-ptsd", version=1)


def change_url(version: ProtocolVersion) -> str:
    return reverse("admin:protocol_protocolversion_change", args=[version.pk])


def snapshot(version: ProtocolVersion) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    row = ProtocolVersion.objects.filter(pk=version.pk).values().first()
    rows = SessionTemplate.objects.filter(version=version).order_by("position").values()
    return (None if row is None else dict(row)), [dict(r) for r in rows]


def action(client: Client, name: str, *versions: ProtocolVersion) -> Any:
    return client.post(
        reverse(CHANGELIST),
        {"action": name, "_selected_action": [str(v.pk) for v in versions]},
    )


def test_anonymous_users_are_sent_to_log_in(client: Client) -> None:
    response = client.get(reverse(CHANGELIST))
    assert response.status_code == 302
    assert reverse("admin:login") in response["Location"]
    response = client.get(change_url(mapp_v1()))
    assert response.status_code == 302


def test_changelist_lists_the_versions(admin_client: Client) -> None:
    response = admin_client.get(reverse(CHANGELIST))
    assert response.status_code == 200
    text = response.content.decode()
    for slug in ("mapp-ptsd", "mdma-cbct-couples"):
        assert slug in text


def test_change_page_of_an_active_version_is_read_only(admin_client: Client) -> None:
    version = mapp_v1()
    response = admin_client.get(change_url(version))
    assert response.status_code == 200
    text = response.content.decode()
    assert version.name in text
    assert "dosing-1" in text  # the sessions are shown
    # ... but nothing can be edited: no input for the version's fields or the sessions'
    assert 'name="name"' not in text
    assert 'name="span_max_weeks"' not in text
    assert 'name="sessions-0-title"' not in text
    assert 'name="sessions-0-target_days"' not in text
    assert "__prefix__" not in text  # no empty form to add a session
    assert "-DELETE" not in text
    assert "/delete/" not in text
    # the only form fields left (besides buttons) are hidden bookkeeping: the CSRF token, the
    # inline's management form and the ids of the sessions shown
    fields = re.findall(r"<(?:input|select|textarea)\b[^>]*>", text)
    names = {
        m.group(1)
        for f in fields
        if 'type="submit"' not in f and (m := re.search(r'\bname="([^"]+)"', f))
    }
    editable = {
        n
        for n in names
        if n != "csrfmiddlewaretoken"
        and not re.fullmatch(r"sessions-(TOTAL|INITIAL|MIN_NUM|MAX_NUM)_FORMS", n)
        and not re.fullmatch(r"sessions-\d+-(id|version)", n)
    }
    assert editable == set()
    assert sum(n.endswith("-id") for n in names) == len(shipped_document("mapp-ptsd")["sessions"])


def test_change_page_of_a_draft_is_editable(admin_client: Client) -> None:
    action(admin_client, "new_draft", mapp_v1())
    draft = ProtocolVersion.objects.get(protocol__slug="mapp-ptsd", version=2)
    response = admin_client.get(change_url(draft))
    assert response.status_code == 200
    text = response.content.decode()
    assert 'name="name"' in text
    assert 'name="sessions-0-title"' in text


def test_posting_changes_to_an_active_version_changes_nothing(admin_client: Client) -> None:
    version = mapp_v1()
    before = snapshot(version)
    sessions = before[1]
    data: dict[str, Any] = {
        "name": "Hacked",
        "description": "",
        "span_min_weeks": "1",
        "span_max_weeks": "99",
        "sessions-TOTAL_FORMS": str(len(sessions)),
        "sessions-INITIAL_FORMS": str(len(sessions)),
        "sessions-MIN_NUM_FORMS": "0",
        "sessions-MAX_NUM_FORMS": "1000",
        "_save": "Save",
    }
    for i, session in enumerate(sessions):
        data[f"sessions-{i}-id"] = str(session["id"])
        data[f"sessions-{i}-version"] = str(version.pk)
        data[f"sessions-{i}-key"] = session["key"]
        data[f"sessions-{i}-title"] = "Hacked"
        data[f"sessions-{i}-target_days"] = "99"
    data["sessions-1-DELETE"] = "on"
    response = admin_client.post(change_url(version), data)
    assert response.status_code in {200, 302, 403}
    assert snapshot(version) == before
    assert protocol_document(version) == shipped_document("mapp-ptsd")


def test_an_active_version_cannot_be_deleted_from_the_admin(admin_client: Client) -> None:
    version = mapp_v1()
    before = snapshot(version)
    page = admin_client.get(reverse("admin:protocol_protocolversion_delete", args=[version.pk]))
    assert page.status_code == 403
    response = admin_client.post(
        reverse(CHANGELIST),
        {"action": "delete_selected", "_selected_action": [str(version.pk)], "post": "yes"},
    )
    assert response.status_code in {302, 403}
    assert snapshot(version) == before


@pytest.mark.parametrize("slug", ["mapp-ptsd", "mdma-cbct-couples"])
def test_export_action_returns_the_document(admin_client: Client, slug: str) -> None:
    version = ProtocolVersion.objects.get(protocol__slug=slug, version=1)
    response = action(admin_client, "export_json", version)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert f'filename="{slug}-v1.json"' in response["Content-Disposition"]
    document = json.loads(response.content)
    assert document == protocol_document(version)
    assert document == shipped_document(slug)


def test_export_action_with_two_versions_returns_a_list(admin_client: Client) -> None:
    versions = list(ProtocolVersion.objects.filter(version=1).order_by("protocol__slug"))
    assert len(versions) == 2
    response = action(admin_client, "export_json", *versions)
    assert response.status_code == 200
    documents = json.loads(response.content)
    assert sorted(documents, key=lambda d: d["slug"]) == [protocol_document(v) for v in versions]


def test_new_draft_action(admin_client: Client) -> None:
    v1 = mapp_v1()
    response = action(admin_client, "new_draft", v1)
    assert response.status_code == 302
    draft = ProtocolVersion.objects.get(protocol__slug="mapp-ptsd", version=2)
    assert draft.status == "draft"
    assert protocol_document(draft) == protocol_document(v1) | {"version": 2, "status": "draft"}
    assert mapp_v1().status == "active"
    messages = [str(m) for m in admin_client.get(reverse(CHANGELIST)).context["messages"]]
    assert any("mapp-ptsd v2" in m for m in messages)


def test_activate_action_checks_the_rules(admin_client: Client) -> None:
    action(admin_client, "new_draft", mapp_v1())
    draft = ProtocolVersion.objects.get(protocol__slug="mapp-ptsd", version=2)
    session = SessionTemplate.objects.get(version=draft, key="prep-2")
    session.target_days = 40  # window [3, 14]
    session.save()
    response = action(admin_client, "activate", draft)
    assert response.status_code == 302
    draft.refresh_from_db()
    assert draft.status == "draft"
    assert mapp_v1().status == "active"

    session.target_days = 7
    session.save()
    action(admin_client, "activate", draft)
    draft.refresh_from_db()
    assert draft.status == "active"
    assert mapp_v1().status == "retired"


def test_a_drafts_reminder_rules_are_checked_on_save_and_on_activation(
    admin_client: Client,
) -> None:
    action(admin_client, "new_draft", mapp_v1())
    draft = ProtocolVersion.objects.get(protocol__slug="mapp-ptsd", version=2)
    session = SessionTemplate.objects.get(version=draft, key="prep-1")
    session.reminders = [{"key": "x", "when": {"weeks_before": 1}}]
    with pytest.raises(ValidationError) as caught:
        session.full_clean()
    assert any("reminders" in str(m) or "when" in str(m) for m in caught.value.messages)

    # a rule of the right shape that breaks a protocol rule stops activation
    session.reminders = [
        {
            "key": "blind",
            "when": {"hours_before": 24},
            "audience": ["assessor"],
            "channels": ["email"],
            "message": "upcoming",
        }
    ]
    session.full_clean()
    session.save()
    action(admin_client, "activate", draft)
    draft.refresh_from_db()
    assert draft.status == "draft"
    assert mapp_v1().status == "active"
