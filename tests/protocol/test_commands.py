"""The protocol management commands (export_protocol, import_protocol), and every command's
errors as a coordinator sees them: one line on stderr, a non-zero exit, no traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from protocol.models import Protocol, ProtocolVersion, SessionTemplate
from protocol.selectors import protocol_document, protocol_version_get
from tests.conftest import shipped_document

ROOT = Path(__file__).resolve().parent.parent.parent


def counts() -> tuple[int, int, int]:
    return (
        Protocol.objects.count(),
        ProtocolVersion.objects.count(),
        SessionTemplate.objects.count(),
    )


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


def command_error(*args: str) -> str:
    with pytest.raises(CommandError) as caught:
        run(*args)
    message = str(caught.value)
    assert "\n" not in message.strip(), message
    return message


def write_json(path: Path, document: Any) -> Path:
    path.write_text(json.dumps(document, indent=2))
    return path


# --- export_protocol -----------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("slug", ["mapp-ptsd", "mdma-cbct-couples"])
def test_export_to_stdout(slug: str) -> None:
    assert json.loads(run("export_protocol", slug)) == shipped_document(slug)


@pytest.mark.django_db
def test_export_to_a_file(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    assert run("export_protocol", "mapp-ptsd", "--output", str(target)) == ""
    assert json.loads(target.read_text()) == shipped_document("mapp-ptsd")


@pytest.mark.django_db
def test_export_a_named_version() -> None:
    named = run("export_protocol", "mapp-ptsd", "--protocol-version", "1")
    assert named == run("export_protocol", "mapp-ptsd")
    assert json.loads(named)["version"] == 1


@pytest.mark.django_db
def test_export_of_an_unknown_protocol() -> None:
    message = command_error("export_protocol", "nope")
    assert "unknown protocol 'nope'" in message
    assert "mapp-ptsd" in message  # says what exists


@pytest.mark.django_db
def test_export_of_an_unknown_version() -> None:
    message = command_error("export_protocol", "mapp-ptsd", "--protocol-version", "7")
    assert "no version 7" in message
    assert "versions: 1" in message


@pytest.mark.django_db
def test_export_to_an_unwritable_place(tmp_path: Path) -> None:
    message = command_error(
        "export_protocol", "mapp-ptsd", "--output", str(tmp_path / "missing" / "out.json")
    )
    assert "cannot write" in message


# --- import_protocol -----------------------------------------------------------------------


@pytest.mark.django_db
def test_import_a_valid_file(tmp_path: Path) -> None:
    document = shipped_document("mapp-ptsd") | {"slug": "site-copy", "status": "draft"}
    path = write_json(tmp_path / "site-copy.json", document)
    output = run("import_protocol", str(path))
    assert "site-copy v1 (draft)" in output
    version = protocol_version_get(slug="site-copy", version=1)
    assert protocol_document(version) == document


@pytest.mark.django_db
def test_import_as_new_version(tmp_path: Path) -> None:
    path = write_json(tmp_path / "mapp.json", shipped_document("mapp-ptsd"))
    output = run("import_protocol", str(path), "--as-new-version")
    assert "mapp-ptsd v2 (draft)" in output
    v2 = protocol_version_get(slug="mapp-ptsd", version=2)
    assert protocol_document(v2) == shipped_document("mapp-ptsd") | {
        "version": 2,
        "status": "draft",
    }
    assert protocol_version_get(slug="mapp-ptsd").version == 1  # still the active one


@pytest.mark.django_db
def test_export_then_import_round_trip(tmp_path: Path) -> None:
    target = tmp_path / "couples.json"
    run("export_protocol", "mdma-cbct-couples", "--output", str(target))
    run("import_protocol", str(target), "--as-new-version")
    v2 = protocol_version_get(slug="mdma-cbct-couples", version=2)
    exported = json.loads(run("export_protocol", "mdma-cbct-couples", "--protocol-version", "2"))
    assert exported == protocol_document(v2)
    assert exported | {"version": 1, "status": "active"} == shipped_document("mdma-cbct-couples")


@pytest.mark.django_db
def test_import_of_a_non_json_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.json"
    path.write_text("{ this is not json")
    before = counts()
    message = command_error("import_protocol", str(path))
    assert str(path) in message
    assert "not JSON" in message
    assert counts() == before


@pytest.mark.django_db
def test_import_of_a_binary_file(tmp_path: Path) -> None:
    path = tmp_path / "image.json"
    path.write_bytes(b"\xff\xfe\x00\x80garbage")
    message = command_error("import_protocol", str(path))
    assert "not JSON" in message


@pytest.mark.django_db
def test_import_of_a_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.json"
    message = command_error("import_protocol", str(path))
    assert f"cannot read {path}" in message


@pytest.mark.django_db
def test_import_of_an_invalid_protocol_lists_the_problems(tmp_path: Path) -> None:
    document = shipped_document("mapp-ptsd") | {"slug": "broken", "version": 3}
    document["sessions"][1]["timing"]["target_days"] = 30  # prep-2, window [3, 14]
    document["sessions"][4]["dose_plan"] = None  # dosing-1
    document["sessions"][0]["start_time"] = "25:00"  # a schema error comes first
    path = write_json(tmp_path / "broken.json", document)
    before = counts()
    message = command_error("import_protocol", str(path))
    assert "1 problem(s)" in message
    assert "sessions/0/start_time" in message
    assert counts() == before

    document["sessions"][0]["start_time"] = "10:00"
    write_json(path, document)
    message = command_error("import_protocol", str(path))
    assert "2 problem(s)" in message
    assert "prep-2: " in message
    assert "dosing-1: " in message
    assert counts() == before


@pytest.mark.django_db
def test_import_of_an_existing_version(tmp_path: Path) -> None:
    path = write_json(tmp_path / "mapp.json", shipped_document("mapp-ptsd"))
    before = counts()
    message = command_error("import_protocol", str(path))
    assert "mapp-ptsd version 1 exists already" in message
    assert "--as-new-version" in message or "new version" in message
    assert counts() == before


@pytest.mark.django_db
def test_load_protocols_reports_unchanged() -> None:
    assert run("load_protocols").splitlines() == [
        "mapp-ptsd v1: unchanged",
        "mdma-cbct-couples v1: unchanged",
    ]


# --- as real processes ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def sqlite_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A migrated throwaway SQLite database, shared by the subprocess tests."""
    db = tmp_path_factory.mktemp("cli") / "db.sqlite3"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(Path.home()),
        "DATABASE_URL": f"sqlite:///{db}",
        "DEBUG": "1",
    }
    done = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return env


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


PLAN = ["plan_schedule", "--protocol", "mapp-ptsd", "--timezone", "Europe/London"]


def test_plan_schedule_process_succeeds(sqlite_env: dict[str, str]) -> None:
    done = manage(sqlite_env, *PLAN, "--start", "2027-03-01", "--format", "json")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    plan = json.loads(done.stdout)
    assert plan["protocol"] == "mapp-ptsd"
    assert plan["sessions"][0]["key"] == "prep-1"


# 2027-03-06 is a Saturday (see test_closed_start_is_a_saturday): prep-1 has the window [0, 0]
# and the site is closed then.
CLOSED_START = date(2027, 3, 6)


def test_closed_start_is_a_saturday() -> None:
    assert CLOSED_START.weekday() == 5


CLI_ERRORS = {
    "unknown protocol": (
        ["plan_schedule", "--protocol", "nope", "--timezone", "UTC", "--start", "2027-03-01"],
        "unknown protocol 'nope'",
    ),
    "impossible date": ([*PLAN, "--start", "2027-02-30"], "'2027-02-30' is not a real date"),
    "unknown zone": (
        [
            "plan_schedule",
            "--protocol",
            "mapp-ptsd",
            "--timezone",
            "Mars/Olympus",
            "--start",
            "2027-03-01",
        ],
        "unknown time zone 'Mars/Olympus'",
    ),
    "closed start": (
        [*PLAN, "--start", CLOSED_START.isoformat()],
        "the course cannot start on a closed day",
    ),
    "bad open days": (
        [*PLAN, "--start", "2027-03-01", "--open-days", "mon,funday"],
        "'funday'",
    ),
    "bad format": ([*PLAN, "--start", "2027-03-01", "--format", "xml"], "'xml'"),
    "missing start": (PLAN, "--start"),
    "export unknown": (["export_protocol", "nope"], "unknown protocol 'nope'"),
}


@pytest.mark.parametrize("case", list(CLI_ERRORS))
def test_command_errors_are_one_line(sqlite_env: dict[str, str], case: str) -> None:
    args, expected = CLI_ERRORS[case]
    done = manage(sqlite_env, *args)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert expected in lines[0]
    assert done.stdout == ""
