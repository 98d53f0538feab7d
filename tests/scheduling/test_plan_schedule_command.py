"""plan_schedule through call_command: the JSON shape, the effect of --closed and --open-days,
the table, and the errors."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from io import StringIO
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.core.management import CommandError, call_command

from protocol.spec import ProtocolSpec
from tests.conftest import shipped_document

pytestmark = pytest.mark.django_db

START = date(2027, 3, 1)  # a Monday; US clocks go forward on 2027-03-14, UK on 2027-03-28
ZONE = "America/New_York"
SESSION_KEYS = {
    "key",
    "kind",
    "title",
    "start",
    "end",
    "window_start",
    "window_end",
    "overnight",
    "anchor",
}


def plan(*extra: str, protocol: str = "mapp-ptsd", start: date = START, zone: str = ZONE) -> Any:
    out = StringIO()
    call_command(
        "plan_schedule",
        "--protocol",
        protocol,
        "--start",
        start.isoformat(),
        "--timezone",
        zone,
        "--format",
        "json",
        *extra,
        stdout=out,
    )
    return json.loads(out.getvalue())


def by_key(document: Any) -> dict[str, dict[str, Any]]:
    return {s["key"]: s for s in document["sessions"]}


def local_day(session: dict[str, Any]) -> date:
    return datetime.fromisoformat(session["start"]).date()


def occurrence_keys(spec: ProtocolSpec) -> set[str]:
    return {s.occurrence_key(i) for s in spec.sessions for i in range(1, s.repeat_count + 1)}


def test_json_shape(mapp_spec: ProtocolSpec) -> None:
    document = plan()
    assert set(document) == {"protocol", "version", "timezone", "sessions"}
    assert (document["protocol"], document["version"], document["timezone"]) == (
        "mapp-ptsd",
        1,
        ZONE,
    )
    sessions = document["sessions"]
    assert all(set(s) == SESSION_KEYS for s in sessions)
    keys = [s["key"] for s in sessions]
    assert len(keys) == len(set(keys))
    assert set(keys) == occurrence_keys(mapp_spec)
    template_keys = {s.key for s in mapp_spec.sessions}
    for s in sessions:
        start = datetime.fromisoformat(s["start"])
        end = datetime.fromisoformat(s["end"])
        assert start.tzinfo is not None and end.tzinfo is not None
        assert start.utcoffset() == start.astimezone(ZoneInfo(ZONE)).utcoffset()
        template = mapp_spec.session(s["key"].split(".")[0])
        assert end - start == timedelta(minutes=template.duration_minutes)
        assert start.astimezone(ZoneInfo(ZONE)).time() == template.start_time
        window_start = date.fromisoformat(s["window_start"])
        window_end = date.fromisoformat(s["window_end"])
        assert window_start <= start.date() <= window_end
        assert s["anchor"] is None or s["anchor"] in template_keys
        assert s["anchor"] == template.timing.anchor
        assert s["kind"] == template.kind.value
        assert s["title"] == template.title
        assert s["overnight"] is template.overnight
    starts = [datetime.fromisoformat(s["start"]) for s in sessions]
    assert starts == sorted(starts)
    assert local_day(sessions[0]) == START


def test_offsets_follow_daylight_saving() -> None:
    sessions = by_key(plan())
    # prep-2 is before the US change (EST, -05:00), prep-3 after it (EDT, -04:00)
    assert datetime.fromisoformat(sessions["prep-2"]["start"]).utcoffset() == timedelta(hours=-5)
    assert datetime.fromisoformat(sessions["prep-3"]["start"]).utcoffset() == timedelta(hours=-4)


def test_default_site_week(mapp_spec: ProtocolSpec) -> None:
    sessions = by_key(plan())
    for key, s in sessions.items():
        if mapp_spec.session(key.split(".")[0]).open_days_apply:
            assert local_day(s).weekday() < 5, key
    # phone calls are daily: five consecutive days always include a weekend day
    phone_days = [local_day(sessions[f"phone-1.{i}"]) for i in range(1, 6)]
    assert [(d - phone_days[0]).days for d in phone_days] == [0, 1, 2, 3, 4]
    assert any(d.weekday() >= 5 for d in phone_days)
    for n in (1, 2, 3):
        dosing = local_day(sessions[f"dosing-{n}"])
        assert local_day(sessions[f"integration-{n}a"]) == dosing + timedelta(days=1)
        assert dosing.weekday() != 4  # never Friday: the next morning would be Saturday


def test_closing_the_target_day_moves_the_session() -> None:
    before = by_key(plan())
    target = local_day(before["prep-2"])
    assert target == START + timedelta(days=7)  # on target without closures
    after = by_key(plan("--closed", target.isoformat()))
    assert local_day(after["prep-2"]) == target + timedelta(days=1)
    # its dependents are planned from its actual date
    assert local_day(after["prep-3"]) == local_day(after["prep-2"]) + timedelta(days=7)
    assert local_day(after["prep-1"]) == START


def test_several_closed_days() -> None:
    target = START + timedelta(days=7)
    closed = [target + timedelta(days=n) for n in range(3)]
    after = by_key(plan("--closed", *(d.isoformat() for d in closed)))
    assert local_day(after["prep-2"]) == target + timedelta(days=3)


def test_open_days_change_the_plan(mapp_spec: ProtocolSpec) -> None:
    default = plan()
    # by default baseline is two days after prep-3 (a Monday): a Wednesday
    assert local_day(by_key(default)["baseline"]).weekday() == 2
    narrow = plan("--open-days", "mon,tue,thu,fri")
    assert narrow != default
    assert local_day(by_key(narrow)["baseline"]).weekday() == 3  # moved to Thursday
    for s in narrow["sessions"]:
        if mapp_spec.session(s["key"].split(".")[0]).open_days_apply:
            assert local_day(s).weekday() in {0, 1, 3, 4}, s["key"]
    # a dosing day needs an open next morning: Monday or Thursday only
    for n in (1, 2, 3):
        assert local_day(by_key(narrow)[f"dosing-{n}"]).weekday() in {0, 3}


def test_open_days_without_two_consecutive_days_cannot_host_dosing() -> None:
    with pytest.raises(CommandError, match=r"dosing-1 must fall between .* and no day in it works"):
        plan("--open-days", "mon,wed,fri")


def test_open_days_accept_full_names() -> None:
    assert plan("--open-days", "Monday,Tuesday,Wednesday,Thursday,Friday") == plan()


def test_couples_plan() -> None:
    document = plan(protocol="mdma-cbct-couples", zone="Europe/London")
    keys = [s["key"] for s in document["sessions"]]
    assert set(keys) == {s["key"] for s in shipped_document("mdma-cbct-couples")["sessions"]}
    sessions = by_key(document)
    assert local_day(sessions["conjoint-1a"]) == local_day(sessions["dosing-1"]) + timedelta(1)


def test_table_format() -> None:
    out = StringIO()
    call_command(
        "plan_schedule",
        "--protocol",
        "mapp-ptsd",
        "--start",
        START.isoformat(),
        "--timezone",
        ZONE,
        "--closed",
        "2027-03-08",
        stdout=out,
    )
    text = out.getvalue()
    for key in by_key(plan()):
        assert key in text
    assert ZONE in text
    assert "2027-03-08" in text  # the closure is listed
    assert "EST" in text and "EDT" in text


def test_unknown_protocol() -> None:
    with pytest.raises(CommandError, match="unknown protocol 'nope'"):
        plan(protocol="nope")


def test_unknown_version() -> None:
    with pytest.raises(CommandError, match="no version 4"):
        plan("--protocol-version", "4")


def test_course_that_cannot_be_planned() -> None:
    saturday = date(2027, 3, 6)
    assert saturday.weekday() == 5
    with pytest.raises(CommandError) as caught:
        plan(start=saturday)
    message = str(caught.value)
    # the refusal names the rule and what to do next, not the planner's window arithmetic
    assert "the course cannot start on a closed day (Saturday)" in message
    assert "the next open day is Mon 8 Mar 2027" in message
    assert "\n" not in message


def test_closing_every_day_of_a_window_is_explained() -> None:
    # prep-2 has the window [+3, +14] after prep-1
    closed = [START + timedelta(days=n) for n in range(3, 15)]
    with pytest.raises(
        CommandError, match=r"prep-2 must fall between .* the site is closed \(a closure date\)"
    ):
        plan("--closed", *(d.isoformat() for d in closed))


@pytest.mark.parametrize(
    "args",
    [
        ["--start", "2027-02-30", "--timezone", ZONE],
        ["--start", "2027-03-01", "--timezone", "Mars/Olympus"],
        ["--timezone", ZONE],
    ],
)
def test_bad_arguments_raise_command_error(args: list[str]) -> None:
    with pytest.raises(CommandError, match=r"^Error: "):
        call_command("plan_schedule", "--protocol", "mapp-ptsd", *args, stdout=StringIO())
