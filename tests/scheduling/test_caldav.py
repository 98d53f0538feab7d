"""CalDAV publishing against a real Radicale server (tests/servers_caldav.py), started by the
tests on loopback and read back with the ``caldav`` client: sessions booked through the
services, pushes claimed and delivered in-process as the worker would (and once through a real
``celery worker``), then the collection checked: same UID, higher SEQUENCE, new time,
STATUS:CANCELLED kept, nothing deleted; a server down is retried, a wrong password fails with
its reason; the password is never shown back."""

from __future__ import annotations

import base64
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import icalendar
import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django.views.debug import SafeExceptionReporterFilter

from config.celery import app
from scheduling import calendars, publishing
from scheduling.channels import TransportError
from scheduling.forms import SiteCalDavForm
from scheduling.models import CalendarPush, OpeningHours, ScheduledSession, Site, SiteCalDav
from scheduling.services import session_reschedule, session_set_status
from tests.scheduling.test_dispatch import enrolled_participant
from tests.servers_caldav import PASSWORD, USER, RadicaleServer

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent.parent


@pytest.fixture
def radicale(tmp_path: Path) -> Iterator[RadicaleServer]:
    with RadicaleServer(tmp_path) as server:
        server.make_collection()
        yield server


def publish_to(site: Site, url: str, password: str = PASSWORD) -> SiteCalDav:
    return publishing.site_caldav_set(
        site=site, url=url, username=USER, password=password, enabled=True, by=None
    )


def push_due(now: datetime | None = None) -> list[str]:
    """What the beat's sweep and the push tasks do, in this process: claim what is due and
    deliver each. Returns the outcomes."""
    now = now or timezone.now()
    claimed = publishing.calendar_pushes_claim_due(now=now, limit=10_000)
    return [
        publishing.calendar_push_deliver(push_id=pk, claim=claim, now=now) for pk, claim in claimed
    ]


def stored(server: RadicaleServer) -> dict[str, icalendar.Event]:
    """Every event in the collection, by UID, read with the caldav client; each resource must
    hold exactly one VEVENT and be named after its UID."""
    found: dict[str, icalendar.Event] = {}
    resources = server.calendar().events()
    assert isinstance(resources, list)  # the synchronous client's answer
    for resource in resources:
        parsed = icalendar.Calendar.from_ical(resource.data)
        events = [e for e in parsed.walk("VEVENT") if isinstance(e, icalendar.Event)]
        assert len(events) == 1, resource.data
        uid = str(events[0]["UID"])
        assert str(resource.url).endswith(f"/{uid}.ics"), resource.url
        found[uid] = events[0]
    return found


def test_enrolment_publishes_every_session_with_its_uid(
    site_a: Site, radicale: RadicaleServer
) -> None:
    publish_to(site_a, radicale.collection_url)
    participant, _ = enrolled_participant(site_a)
    sessions = list(ScheduledSession.objects.filter(course__participant=participant))
    assert CalendarPush.objects.filter(status="pending").count() == len(sessions)

    outcomes = push_due()

    assert outcomes == ["sent"] * len(sessions)
    events = stored(radicale)
    assert set(events) == {str(s.uid) for s in sessions}
    for session in sessions:
        event = events[str(session.uid)]
        assert int(str(event["SEQUENCE"])) == session.sequence
        assert str(event["SUMMARY"]).startswith(f"{participant.code} · ")
        assert str(event["STATUS"]) == "CONFIRMED"
        assert event.decoded("DTSTART") == session.start
        assert str(event["DTSTART"].params["TZID"]) == site_a.timezone
    assert push_due() == []  # nothing left to do


def test_an_overnight_stay_is_published_as_the_exports_show_it(
    site_a: Site, radicale: RadicaleServer
) -> None:
    """The collection and the downloads carry the same event under one UID and SEQUENCE: an
    overnight stay runs to the next morning in both (it was published ending the evening
    before, as the push read the session without its room hold)."""
    publish_to(site_a, radicale.collection_url)
    participant, _ = enrolled_participant(site_a)
    push_due()
    events = stored(radicale)
    overnight = ScheduledSession.objects.filter(course__participant=participant, overnight=True)
    assert overnight.exists()
    for session in calendars.with_event_data(overnight):
        exported = calendars.session_event(session)
        assert exported.end > session.end  # the export shows the night
        event = events[str(session.uid)]
        assert event.decoded("DTEND") == exported.end
        assert str(event["SUMMARY"]) == exported.summary


def test_a_moved_session_keeps_its_uid_with_a_higher_sequence_and_the_new_time(
    site_a: Site, radicale: RadicaleServer
) -> None:
    publish_to(site_a, radicale.collection_url)
    _, session = enrolled_participant(site_a)
    push_due()
    before = stored(radicale)
    old_sequence = int(str(before[str(session.uid)]["SEQUENCE"]))

    session_reschedule(
        session=session, start=session.start + timedelta(hours=1), by=None, reason="moved"
    )
    session.refresh_from_db()
    assert "sent" in push_due()

    after = stored(radicale)
    assert set(after) == set(before)  # no second copy of the moved session, nothing deleted
    event = after[str(session.uid)]
    assert int(str(event["SEQUENCE"])) == session.sequence > old_sequence
    assert event.decoded("DTSTART") == session.start


def test_a_newer_change_supersedes_one_still_waiting(
    site_a: Site, radicale: RadicaleServer
) -> None:
    publish_to(site_a, radicale.collection_url)
    _, session = enrolled_participant(site_a)
    push_due()
    for _ in range(2):
        session.refresh_from_db()
        session_reschedule(
            session=session, start=session.start + timedelta(hours=1), by=None, reason="moved"
        )
    session.refresh_from_db()
    rows = CalendarPush.objects.filter(session=session).order_by("sequence")
    assert [r.status for r in rows] == ["sent", "superseded", "pending"]
    assert rows.last().sequence == session.sequence  # type: ignore[union-attr]

    push_due()

    event = stored(radicale)[str(session.uid)]
    assert int(str(event["SEQUENCE"])) == session.sequence
    assert event.decoded("DTSTART") == session.start


def test_a_cancelled_session_stays_in_the_collection_as_cancelled(
    site_a: Site, radicale: RadicaleServer
) -> None:
    publish_to(site_a, radicale.collection_url)
    _, session = enrolled_participant(site_a)
    push_due()
    count = len(stored(radicale))

    session_set_status(session=session, status="cancelled", by=None, reason="unwell")
    session.refresh_from_db()
    push_due()

    events = stored(radicale)
    assert len(events) == count  # never deleted
    event = events[str(session.uid)]
    assert str(event["STATUS"]) == "CANCELLED"
    assert int(str(event["SEQUENCE"])) == session.sequence


def test_server_down_is_retried_with_backoff_then_published(
    site_a: Site, radicale: RadicaleServer
) -> None:
    publish_to(site_a, radicale.collection_url)
    _, session = enrolled_participant(site_a)
    radicale.stop()
    now = timezone.now()

    assert set(push_due(now)) == {"pending"}

    row = CalendarPush.objects.filter(session=session).get()
    assert row.attempts == 1
    assert "could not be reached" in row.last_error
    assert row.due_at == now + timedelta(seconds=settings.CALDAV_RETRY_SECONDS[0])
    assert push_due(now + timedelta(seconds=1)) == []  # not due yet: no hammering

    radicale.start()
    later = row.due_at + timedelta(seconds=1)
    assert set(push_due(later)) == {"sent"}
    row.refresh_from_db()
    assert (row.status, row.attempts, row.last_error) == ("sent", 2, "")
    assert str(session.uid) in stored(radicale)


def test_a_server_that_stays_down_fails_after_the_last_try(
    site_a: Site, radicale: RadicaleServer, settings: Any
) -> None:
    settings.CALDAV_MAX_ATTEMPTS = 2
    publish_to(site_a, radicale.collection_url)
    _, session = enrolled_participant(site_a)
    radicale.stop()
    push_due()
    row = CalendarPush.objects.filter(session=session).get()
    push_due(row.due_at)
    row.refresh_from_db()
    assert row.status == "failed"
    assert row.last_error.startswith("Not published after 2 tries")


def test_a_wrong_password_fails_at_once_with_a_clear_reason(
    site_a: Site, radicale: RadicaleServer, coordinator_a: User
) -> None:
    publish_to(site_a, radicale.collection_url, password="not-the-password")
    _, session = enrolled_participant(site_a)

    outcomes = push_due()

    assert set(outcomes) == {"failed"}
    row = CalendarPush.objects.filter(session=session).get()
    assert row.attempts == 1
    assert "refused the user name and password (401 Unauthorized)" in row.last_error
    assert "not-the-password" not in row.last_error
    assert stored(radicale) == {}
    client = Client()
    client.force_login(coordinator_a)
    page = client.get(reverse("site-caldav", kwargs={"pk": site_a.pk})).content.decode()
    assert "refused the user name and password" in page
    assert "not-the-password" not in page


def test_the_password_is_never_logged(
    site_a: Site, radicale: RadicaleServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-Pa55-for-the-log"
    publish_to(site_a, radicale.collection_url, password=wrong)
    enrolled_participant(site_a)
    push_due()
    publish_to(site_a, radicale.collection_url)
    push_due()
    assert "sent" in set(CalendarPush.objects.values_list("status", flat=True))
    logged = caplog.text
    for secret in (wrong, PASSWORD):
        assert secret not in logged
        assert base64.b64encode(f"{USER}:{secret}".encode()).decode() not in logged


def test_a_second_task_for_the_same_claim_does_nothing(
    site_a: Site, radicale: RadicaleServer
) -> None:
    publish_to(site_a, radicale.collection_url)
    enrolled_participant(site_a)
    (pk, claim), *_ = publishing.calendar_pushes_claim_due(now=timezone.now(), limit=1)
    assert publishing.calendar_push_deliver(push_id=pk, claim=claim) == "sent"
    assert publishing.calendar_push_deliver(push_id=pk, claim=claim) == ""
    assert publishing.calendar_push_deliver(push_id=pk, claim=uuid.uuid4()) == ""


@pytest.mark.parametrize(
    ("status", "permanent", "words"),
    [
        (500, False, "tried again"),
        (503, False, "tried again"),
        (429, False, "tried again"),
        (404, True, "no calendar collection"),
        (409, True, "no calendar collection"),
        (415, True, "did not accept the event"),
    ],
)
def test_what_an_answer_means(status: int, permanent: bool, words: str) -> None:
    with pytest.raises(TransportError) as raised:
        publishing._check(publishing._Answer(status, "Reason"), "https://cal.example.org/c/")
    assert raised.value.permanent is permanent
    assert words in str(raised.value)


def test_a_collection_that_does_not_exist_fails_with_its_address(
    site_a: Site, radicale: RadicaleServer
) -> None:
    missing = f"{radicale.base_url}/{USER}/no-such-calendar/"
    publish_to(site_a, missing)
    enrolled_participant(site_a)
    assert set(push_due()) == {"failed"}
    row = CalendarPush.objects.first()
    assert row is not None
    assert f"no calendar collection at {missing}" in row.last_error


def test_correcting_the_settings_publishes_everything_again(
    site_a: Site, radicale: RadicaleServer
) -> None:
    publish_to(site_a, radicale.collection_url, password="wrong")
    participant, _ = enrolled_participant(site_a)
    push_due()
    publish_to(site_a, radicale.collection_url)  # corrected
    push_due()
    sessions = ScheduledSession.objects.filter(course__participant=participant)
    assert set(stored(radicale)) == {str(s.uid) for s in sessions}


def test_sites_without_caldav_plan_no_pushes(site_a: Site) -> None:
    enrolled_participant(site_a)
    assert not CalendarPush.objects.exists()


def test_publishing_switched_off_plans_nothing_more(site_a: Site, radicale: RadicaleServer) -> None:
    config = publish_to(site_a, radicale.collection_url)
    publishing.site_caldav_set(
        site=site_a, url=config.url, username=USER, password=None, enabled=False, by=None
    )
    enrolled_participant(site_a)
    assert not CalendarPush.objects.exists()


# --- the settings: the URL's rules and the write-only password ------------------------------


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("ftp://cal.example.org/c/", "https://"),
        ("the clinic calendar", "Enter a valid URL"),
        ("http://cal.example.org/c/", "Use https://"),
        ("https://clinic:secret@cal.example.org/c/", "Take the user name and password out"),
    ],
)
def test_the_collection_url_is_checked_with_words_that_say_what_to_do(
    url: str, words: str, settings: Any
) -> None:
    settings.DEBUG = False
    form = SiteCalDavForm({"url": url, "username": "u", "password": "p", "enabled": "on"})
    assert not form.is_valid()
    assert words in " ".join(map(str, form.errors["url"]))


@pytest.mark.parametrize(
    "url",
    [
        "https://cal.example.org/c/",
        "cal.example.org/c/",  # https assumed
        "http://127.0.0.1:5232/c/",
        "http://localhost/c/",
    ],
)
def test_https_anywhere_and_http_on_this_machine_are_accepted(url: str, settings: Any) -> None:
    settings.DEBUG = False
    form = SiteCalDavForm({"url": url, "username": "u", "password": "p", "enabled": "on"})
    assert form.is_valid(), form.errors


def test_the_settings_page_never_shows_the_password_and_keeps_it_when_left_empty(
    site_a: Site, coordinator_a: User
) -> None:
    client = Client()
    client.force_login(coordinator_a)
    url = reverse("site-caldav", kwargs={"pk": site_a.pk})
    assert "not set" in client.get(url).content.decode()
    secret = "s3cret-Pa55word"  # noqa: S105
    data = {"url": "https://cal.example.org/dav/sessions/", "username": "clinic", "enabled": "on"}
    response = client.post(url, {**data, "password": secret})
    assert response.status_code == 302
    config = SiteCalDav.objects.get(site=site_a)
    assert config.password == secret
    page = client.get(url).content.decode()
    assert secret not in page
    assert "(set)" in page
    client.post(url, {**data, "username": "clinic2", "password": ""})
    config.refresh_from_db()
    assert (config.username, config.password) == ("clinic2", secret)
    assert not hasattr(config.history.model, "password")  # kept out of the history
    assert secret not in repr(config)


def test_a_refused_form_neither_saves_nor_claims_a_password(
    site_a: Site, coordinator_a: User, settings: Any
) -> None:
    """A password typed with a wrong URL is not saved, and the page answering the error does
    not say one is set (it said "set", so the next save with the field left empty kept none)."""
    settings.DEBUG = False
    publishing.site_caldav_set(
        site=site_a,
        url="https://cal.example.org/c/",
        username="",
        password="",
        enabled=False,
        by=None,
    )
    client = Client()
    client.force_login(coordinator_a)
    url = reverse("site-caldav", kwargs={"pk": site_a.pk})
    data = {"url": "http://cal.example.org/c/", "username": "clinic", "password": "typed-1"}
    page = client.post(url, data).content.decode()
    assert "https" in page and "(not set)" in page and "(set)" not in page
    config = SiteCalDav.objects.get(site=site_a)
    assert (config.url, config.username, config.password) == ("https://cal.example.org/c/", "", "")


def test_an_error_report_of_either_settings_page_never_shows_the_password(
    site_a: Site, coordinator_a: User
) -> None:
    """What Django puts in an error report (the 500 email, the log's request) of a POST to
    the CalDAV page or the site's admin page: every field but the password (the pages were not
    marked, so a failing save would have mailed the password in clear)."""
    secret = "report-S3cret"  # noqa: S105
    coordinator_a.is_staff = True
    coordinator_a.save()
    client = Client()
    client.force_login(coordinator_a)
    posts = {
        reverse("site-caldav", kwargs={"pk": site_a.pk}): {
            "url": "not a url",
            "username": "clinic",
            "password": secret,
        },
        reverse("admin:scheduling_site_change", args=[site_a.pk]): {
            "name": site_a.name,
            "caldav-0-url": "not a url",
            "caldav-0-password": secret,
        },
    }
    for url, data in posts.items():
        response = client.post(url, data)
        assert response.status_code in (200, 400), url
        request = response.wsgi_request
        reported = SafeExceptionReporterFilter().get_post_parameters(request)
        assert secret not in reported.values(), url
        assert data[next(iter(data))] in reported.values(), url  # the rest is still shown


def test_a_bad_url_on_the_page_shows_the_error_and_saves_nothing(
    site_a: Site, coordinator_a: User, settings: Any
) -> None:
    settings.DEBUG = False
    client = Client()
    client.force_login(coordinator_a)
    url = reverse("site-caldav", kwargs={"pk": site_a.pk})
    response = client.post(url, {"url": "http://cal.example.org/", "username": "u"})
    assert response.status_code == 200
    assert "Use https://" in response.content.decode()
    assert not SiteCalDav.objects.exists()


def test_only_who_sets_the_site_up_reaches_the_page(
    site_a: Site, therapist_a: User, coordinator_b: User
) -> None:
    url = reverse("site-caldav", kwargs={"pk": site_a.pk})
    for user in (therapist_a, coordinator_b):
        client = Client()
        client.force_login(user)
        assert client.get(url).status_code == 404
        post = client.post(url, {"url": "https://cal.example.org/c/", "username": "u"})
        assert post.status_code == 404
    assert not SiteCalDav.objects.exists()


def test_the_admin_says_set_never_the_password(site_a: Site, coordinator_a: User) -> None:
    secret = "admin-page-S3cret"  # noqa: S105
    publishing.site_caldav_set(
        site=site_a,
        url="https://cal.example.org/c/",
        username="clinic",
        password=secret,
        enabled=True,
        by=None,
    )
    coordinator_a.is_staff = True
    coordinator_a.save()
    client = Client()
    client.force_login(coordinator_a)
    page = client.get(reverse("admin:scheduling_site_change", args=[site_a.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert "CalDAV publishing" in html
    assert secret not in html
    assert ">set<" in html


def test_the_admin_saves_the_settings_through_the_service(
    site_a: Site, coordinator_a: User
) -> None:
    """Saved on the site's admin page: the service plans the republishing; an empty password
    keeps the stored one."""
    coordinator_a.is_staff = True
    coordinator_a.save()
    client = Client()
    client.force_login(coordinator_a)
    hours = list(OpeningHours.objects.filter(site=site_a).order_by("pk"))
    data: dict[str, Any] = {
        "name": site_a.name,
        "slug": site_a.slug,
        "timezone": site_a.timezone,
        "quiet_hours_start": "21:00",
        "quiet_hours_end": "08:00",
        "hours-TOTAL_FORMS": len(hours),
        "hours-INITIAL_FORMS": len(hours),
        "closures-TOTAL_FORMS": 0,
        "closures-INITIAL_FORMS": 0,
        "caldav-TOTAL_FORMS": 1,
        "caldav-INITIAL_FORMS": 0,
        "caldav-0-url": "https://cal.example.org/dav/sessions/",
        "caldav-0-username": "clinic",
        "caldav-0-password": "admin-S3cret",
        "caldav-0-enabled": "on",
        "_continue": "Save",
    }
    for n, row in enumerate(hours):
        data |= {
            f"hours-{n}-id": row.pk,
            f"hours-{n}-site": site_a.pk,
            f"hours-{n}-weekday": row.weekday,
            f"hours-{n}-opens": f"{row.opens:%H:%M}",
            f"hours-{n}-closes": f"{row.closes:%H:%M}",
        }
    url = reverse("admin:scheduling_site_change", args=[site_a.pk])
    response = client.post(url, data)
    assert response.status_code == 302, response.content.decode()[-3000:]
    config = SiteCalDav.objects.get(site=site_a)
    assert (config.url, config.password, config.generation) == (
        "https://cal.example.org/dav/sessions/",
        "admin-S3cret",
        1,
    )
    data |= {
        "caldav-INITIAL_FORMS": 1,
        "caldav-0-id": config.pk,
        "caldav-0-site": site_a.pk,
        "caldav-0-password": "",
        "caldav-0-username": "clinic2",
    }
    response = client.post(url, data)
    assert response.status_code == 302, response.content.decode()[-3000:]
    config.refresh_from_db()
    assert (config.username, config.password, config.generation) == ("clinic2", "admin-S3cret", 2)
    assert "admin-S3cret" not in client.get(url).content.decode()


# --- through a real worker -------------------------------------------------------------------


def _database_url() -> str:
    db = connection.settings_dict
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{db['USER']}{password}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_publishes_right_after_the_commit(
    site_a: Site, radicale: RadicaleServer, tmp_path: Path
) -> None:
    """No beat: the push is asked for on commit, and the worker's sweep delivers it."""
    app.control.purge()
    prefix = f"caldav-{uuid.uuid4().hex[:8]}"
    log = tmp_path / "worker.log"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(Path.home()),
        "DATABASE_URL": _database_url(),
        "REDIS_URL": str(settings.REDIS_URL),
        "SECRET_KEY": "test-only-not-secret",
    }
    with log.open("w") as output:
        worker = subprocess.Popen(
            [
                *(sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=solo"),
                *("-n", f"{prefix}@%h", "--without-mingle", "--without-gossip"),
            ],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        name = f"{prefix}@{socket.gethostname()}"
        deadline = time.monotonic() + 30
        while not app.control.ping(destination=[name], timeout=0.5):
            assert time.monotonic() < deadline and worker.poll() is None, log.read_text()
        publish_to(site_a, radicale.collection_url)
        participant, _ = enrolled_participant(site_a)
        uids = {
            str(s.uid) for s in ScheduledSession.objects.filter(course__participant=participant)
        }
        deadline = time.monotonic() + 60
        while set(stored(radicale)) != uids:
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        assert set(CalendarPush.objects.values_list("status", flat=True)) == {"sent"}
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=15)
        app.control.purge()
