"""Live calendar feeds (scheduling/feeds.py) and the "Calendar feeds" page
(scheduling/feed_views.py): a secret address shown once, stored hashed, answered with ETag,
Last-Modified, 304 and gzip, decided at each fetch by what the owner may see, revocable, and
never written to a log."""

from __future__ import annotations

import gzip
import io
import logging
import re
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest
import time_machine
import vobject
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils.http import http_date

from scheduling import feeds, services
from scheduling.models import CalendarFeed, ScheduledSession
from tests.conftest import enrol_mapp, make_staff

pytestmark = pytest.mark.django_db

NEW_YORK = ZoneInfo("America/New_York")
ADDRESS = re.compile(r'value="(https?://[^"]+/feeds/([A-Za-z0-9_-]+)\.ics)"')


def _signed_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _create(client: Client, calendar: str, name: str = "Clinic") -> tuple[str, str]:
    """Create a feed on the page; (its path, its token) as the page shows them, once."""
    response = client.post("/calendar-feeds/", {"calendar": calendar, "name": name})
    assert response.status_code == 200, response.content.decode()[:2000]
    found = ADDRESS.search(response.content.decode())
    assert found is not None
    assert f'value="webcal://{urlsplit(found.group(1)).netloc}/feeds/' in response.content.decode()
    return urlsplit(found.group(1)).path, found.group(2)


def _facts_expired() -> time_machine.travel:
    """Past the minute for which a feed's facts (its aggregate query) are reused."""
    return time_machine.travel(datetime.now(UTC) + feeds.FACTS_FOR + timedelta(seconds=1))


def _events(body: bytes) -> list[Any]:
    parsed = vobject.readOne(body.decode())
    return list(parsed.contents.get("vevent", []))


def test_a_feed_is_created_fetched_revalidated_changed_and_revoked(
    site_a: Any, coordinator_a: Any
) -> None:
    course = enrol_mapp(site_a, "RIV-0042", coordinator_a)
    client = _signed_in(coordinator_a)
    path, token = _create(client, f"site:{site_a.pk}", "Site A sessions")
    feed = CalendarFeed.objects.get()
    assert feed.token_hash == services.feed_token_hash(token)
    assert token not in str(CalendarFeed.objects.values().get())  # only the hash is stored
    # the address is shown once: the list never shows it again
    assert token not in client.get("/calendar-feeds/").content.decode()

    visitor = Client()  # no login: the token is the credential
    first = visitor.get(path)
    assert first.status_code == 200
    assert first["Content-Type"] == "text/calendar; charset=utf-8"
    events = _events(first.content)
    assert len(events) == course.sessions.count()
    dosing = course.sessions.get(key="dosing-1")
    by_uid = {event.uid.value: event for event in events}
    assert int(by_uid[str(dosing.uid)].sequence.value) == dosing.sequence
    etag, modified = first["ETag"], first["Last-Modified"]
    assert etag.startswith('"')  # strong: the hash of the body

    again = visitor.get(path, headers={"if-none-match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again["ETag"] == etag and again["Cache-Control"] == "private, max-age=300"
    since = visitor.get(path, headers={"if-modified-since": modified})
    assert since.status_code == 304

    moved = datetime(2027, 3, 31, 9, tzinfo=NEW_YORK)
    services.session_reschedule(session=dosing, start=moved, by=coordinator_a)
    dosing.refresh_from_db()
    # within the minute the feed's facts are reused: a client asking again may get a 304
    assert visitor.get(path, headers={"if-none-match": etag}).status_code == 304
    with _facts_expired():
        changed = visitor.get(path, headers={"if-none-match": etag, "if-modified-since": modified})
        later = visitor.get(path, headers={"if-modified-since": modified})
    assert changed.status_code == 200
    assert changed["ETag"] != etag
    event = {e.uid.value: e for e in _events(changed.content)}[str(dosing.uid)]
    assert (
        int(event.sequence.value) == dosing.sequence > int(by_uid[str(dosing.uid)].sequence.value)
    )
    assert event.dtstart.value.replace(tzinfo=None) == datetime(2027, 3, 31, 9)
    assert later.status_code == 200

    revoked = client.post(f"/calendar-feeds/{feed.pk}/revoke/")
    assert revoked.status_code == 302
    feed.refresh_from_db()
    assert feed.revoked_at is not None
    gone = visitor.get(path)
    assert gone.status_code == 404
    assert visitor.get(path, headers={"if-none-match": changed["ETag"]}).status_code == 404


def test_an_unknown_token_and_a_revoked_one_answer_the_same_plain_404(
    site_a: Any, coordinator_a: Any
) -> None:
    feed, token = services.feed_create(
        owner=coordinator_a, scope="site", target=site_a.pk, name="Site A"
    )
    services.feed_revoke(feed=feed, by=coordinator_a)
    revoked = Client().get(f"/feeds/{token}.ics")
    unknown = Client().get("/feeds/" + "x" * 43 + ".ics")
    assert revoked.status_code == unknown.status_code == 404
    assert revoked.content == unknown.content
    assert revoked["Content-Type"] == "text/plain; charset=utf-8"
    assert Client().get("/feeds/not a token.ics").status_code == 404


def test_another_sites_calendar_cannot_be_chosen(
    site_a: Any, site_b: Any, coordinator_a: Any
) -> None:
    client = _signed_in(coordinator_a)
    page = client.get("/calendar-feeds/").content.decode()
    assert f'value="site:{site_a.pk}"' in page
    assert f'value="site:{site_b.pk}"' not in page
    room_b = site_b.rooms.first()
    for choice in (f"site:{site_b.pk}", f"room:{room_b.pk}", "site:999999"):
        response = client.post("/calendar-feeds/", {"calendar": choice, "name": "Theirs"})
        assert response.status_code == 400
        assert "not one you may see" in response.content.decode()
    assert not CalendarFeed.objects.exists()
    with pytest.raises(services.SchedulingError):  # the service asks the policy too
        services.feed_create(owner=coordinator_a, scope="site", target=site_b.pk, name="x")
    assert not CalendarFeed.objects.exists()


def test_an_owner_removed_from_the_site_or_deactivated_gets_an_empty_calendar(
    site_a: Any, coordinator_a: Any
) -> None:
    enrol_mapp(site_a, "RIV-0042", coordinator_a)
    _, site_token = services.feed_create(
        owner=coordinator_a, scope="site", target=site_a.pk, name="Site A"
    )
    _, mine_token = services.feed_create(owner=coordinator_a, scope="mine", target=None, name="Me")
    before = Client().get(f"/feeds/{site_token}.ics")
    assert len(_events(before.content)) > 0

    coordinator_a.staff_profile.sites.remove(site_a)
    with _facts_expired():
        after = Client().get(f"/feeds/{site_token}.ics", headers={"if-none-match": before["ETag"]})
    assert after.status_code == 200  # not a 304, not a 404: the client drops the events
    assert _events(after.content) == []
    assert "RIV-0042" not in after.content.decode()

    coordinator_a.staff_profile.sites.add(site_a)
    assert len(_events(Client().get(f"/feeds/{site_token}.ics").content)) > 0
    coordinator_a.is_active = False
    coordinator_a.save()
    for token in (site_token, mine_token):
        emptied = Client().get(f"/feeds/{token}.ics")
        assert emptied.status_code == 200 and _events(emptied.content) == []


def test_the_token_never_reaches_a_log(
    site_a: Any, coordinator_a: Any, caplog: pytest.LogCaptureFixture, capsys: Any
) -> None:
    feed, token = services.feed_create(
        owner=coordinator_a, scope="site", target=site_a.pk, name="Site A"
    )
    caplog.set_level(logging.DEBUG)
    Client().get(f"/feeds/{token}.ics")
    services.feed_revoke(feed=feed, by=coordinator_a)
    assert Client().get(f"/feeds/{token}.ics").status_code == 404  # "Not Found: <path>"
    assert caplog.records, "the 404 is logged (with the address redacted)"
    assert any("/feeds/<redacted>" in record.getMessage() for record in caplog.records)
    assert token not in caplog.text
    for record in caplog.records:
        assert token not in str(record.msg) and token not in str(record.args)

    # runserver's access log, through its own handler and formatter, as configured
    server = logging.getLogger("django.server")
    stream = io.StringIO()
    handler = server.handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    previous = handler.setStream(stream)
    try:
        server.info(
            '"%s" %s %s',
            f"GET /feeds/{token}.ics HTTP/1.1",
            "200",
            "1234",
            extra={"request": None, "server_time": "04/Dec/2026 16:00:00", "status_code": 200},
        )
    finally:
        handler.setStream(previous)
    line = stream.getvalue()
    assert '"GET /feeds/<redacted> HTTP/1.1" 200 1234' in line
    assert token not in line

    # gunicorn's access log (config/gunicorn.py), formatted by gunicorn itself
    from gunicorn.config import Config  # type: ignore[import-untyped]

    from config import gunicorn as gunicorn_settings

    config = Config()
    config.set("accesslog", "-")
    config.set("access_log_format", gunicorn_settings.access_log_format)
    access_logger = gunicorn_settings.FeedTokensRedacted(config)

    class Response:
        status, sent, headers = "200 OK", 1234, [("Content-Type", "text/calendar")]

    class Request:
        headers = [("REFERER", f"https://clinic.example.org/feeds/{token}.ics")]

    environ = {
        "REQUEST_METHOD": "GET",
        "RAW_URI": f"/feeds/{token}.ics",
        "PATH_INFO": f"/feeds/{token}.ics",
        "QUERY_STRING": "",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_USER_AGENT": "Calendar/1.0",
        "HTTP_REFERER": f"https://clinic.example.org/feeds/{token}.ics",
    }
    access_logger.access(Response(), Request(), environ, timedelta(milliseconds=3))
    written = capsys.readouterr().out
    assert '"GET /feeds/<redacted> HTTP/1.1" 200 1234' in written
    assert token not in written


def test_headers_gzip_and_no_referrer(site_a: Any, coordinator_a: Any) -> None:
    enrol_mapp(site_a, "RIV-0042", coordinator_a)
    _, token = services.feed_create(
        owner=coordinator_a, scope="site", target=site_a.pk, name="Site A"
    )
    plain = Client().get(f"/feeds/{token}.ics")
    assert "Content-Encoding" not in plain
    assert plain["Cache-Control"] == "private, max-age=300"  # no public caching: PHI
    assert plain["Referrer-Policy"] == "no-referrer"
    assert "Accept-Encoding" in plain["Vary"]
    zipped = Client().get(f"/feeds/{token}.ics", headers={"accept-encoding": "gzip"})
    assert zipped["Content-Encoding"] == "gzip"
    assert gzip.decompress(zipped.content) == plain.content
    assert zipped["ETag"] == "W/" + plain["ETag"]  # Django's gzip: the same ETag, weak
    # a client that stored the weak ETag still gets its 304
    assert (
        Client().get(f"/feeds/{token}.ics", headers={"if-none-match": zipped["ETag"]}).status_code
        == 304
    )


def test_two_fetches_with_nothing_changed_are_byte_identical(
    site_a: Any, coordinator_a: Any
) -> None:
    enrol_mapp(site_a, "RIV-0042", coordinator_a)
    feed, token = services.feed_create(
        owner=coordinator_a, scope="site", target=site_a.pk, name="Site A"
    )
    first = Client().get(f"/feeds/{token}.ics")
    second = Client().get(f"/feeds/{token}.ics")
    CalendarFeed.objects.filter(pk=feed.pk).update(validator="")  # built again from scratch
    with time_machine.travel(datetime.now(UTC) + timedelta(hours=3)):  # and hours later
        third = Client().get(f"/feeds/{token}.ics")
    assert first.content == second.content == third.content
    assert first["ETag"] == second["ETag"] == third["ETag"]
    assert first["Last-Modified"] == third["Last-Modified"]


def test_last_used_is_written_at_most_every_few_minutes(site_a: Any, coordinator_a: Any) -> None:
    feed, token = services.feed_create(
        owner=coordinator_a, scope="site", target=site_a.pk, name="Site A"
    )
    assert feed.last_used_at is None
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    with time_machine.travel(start, tick=False):
        Client().get(f"/feeds/{token}.ics")
    feed.refresh_from_db()
    assert feed.last_used_at == start
    with (
        time_machine.travel(start + timedelta(minutes=2), tick=False),
        CaptureQueriesContext(connection) as queries,
    ):
        Client().get(f"/feeds/{token}.ics")
    assert not [q for q in queries.captured_queries if q["sql"].startswith("UPDATE")]
    feed.refresh_from_db()
    assert feed.last_used_at == start
    with time_machine.travel(start + timedelta(minutes=6), tick=False):
        Client().get(f"/feeds/{token}.ics")
    feed.refresh_from_db()
    assert feed.last_used_at == start + timedelta(minutes=6)


def _fetch_queries(token: str, **headers: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = Client().get(f"/feeds/{token}.ics", headers=headers)
    assert response.status_code in (200, 304)
    return len(queries.captured_queries)


def test_queries_are_bounded_whatever_the_number_of_participants(
    site_a: Any, coordinator_a: Any, django_assert_max_num_queries: Any
) -> None:
    enrol_mapp(site_a, "ONE-0001", coordinator_a)
    _, one = services.feed_create(owner=coordinator_a, scope="site", target=site_a.pk, name="1")
    # the first fetch in a process reads the protocol's words (one query per session
    # template, kept for the life of the process: bounded by the protocol, not the people)
    Client().get(f"/feeds/{one}.ics")
    cold_one = _fetch_queries(one)  # validator unchanged, no conditional headers: built
    for n in range(2, 6):
        enrol_mapp(
            site_a, f"MANY-{n:04d}", coordinator_a, date(2027, 3, 1) + timedelta(weeks=8 * n)
        )
    _, many = services.feed_create(owner=coordinator_a, scope="site", target=site_a.pk, name="m")
    with django_assert_max_num_queries(8):
        first = Client().get(f"/feeds/{many}.ics")
    assert len(_events(first.content)) == ScheduledSession.objects.count()
    assert _fetch_queries(many) == cold_one
    # a participant's own feed reads the same columns (none is read row by row)
    last = ScheduledSession.objects.filter(course__participant__code="MANY-0005").first()
    assert last is not None
    _, own = services.feed_create(
        owner=coordinator_a,
        scope="participant",
        target=last.course.participant_id,
        name="own",
        for_participant=True,
    )
    with django_assert_max_num_queries(8):
        Client().get(f"/feeds/{own}.ics")
    with django_assert_max_num_queries(5):  # a 304: the lookup, the policy, one aggregate
        assert (
            Client().get(f"/feeds/{many}.ics", headers={"if-none-match": first["ETag"]}).status_code
            == 304
        )


def test_a_coordinator_issues_a_participants_own_feed(
    site_a: Any, coordinator_a: Any, therapist_a: Any
) -> None:
    course = enrol_mapp(site_a, "RIV-0042", coordinator_a, dyad=site_a.dyads.first())
    participant = course.participant
    page = _signed_in(coordinator_a).get(f"/participants/{participant.pk}/")
    assert "Issue a calendar feed" in page.content.decode()
    response = _signed_in(coordinator_a).post(f"/participants/{participant.pk}/calendar-feed/")
    assert response.status_code == 200
    found = ADDRESS.search(response.content.decode())
    assert found is not None
    feed = CalendarFeed.objects.get()
    assert feed.owner == coordinator_a and feed.for_participant and feed.target == participant.pk
    body = Client().get(urlsplit(found.group(1)).path).content.decode()
    assert len(_events(body.encode())) == course.sessions.count()
    assert "RIV-0042" not in body  # the participant's own reading: no study code, no room
    for room in site_a.rooms.all():
        assert room.name not in body

    # a therapist who treats the participant may not issue one
    therapist = _signed_in(therapist_a)
    assert (
        "Issue a calendar feed"
        not in therapist.get(f"/participants/{participant.pk}/").content.decode()
    )
    assert therapist.post(f"/participants/{participant.pk}/calendar-feed/").status_code == 403
    assert CalendarFeed.objects.count() == 1


def test_coordinators_see_and_revoke_their_sites_feeds_and_others_do_not(
    site_a: Any, site_b: Any, coordinator_a: Any, coordinator_b: Any, therapist_a: Any
) -> None:
    theirs, theirs_token = services.feed_create(
        owner=therapist_a, scope="mine", target=None, name="Therapist's own"
    )
    ours, _ = services.feed_create(
        owner=coordinator_a, scope="site", target=site_a.pk, name="Coordinator's site"
    )
    other = make_staff("therapist-a2", "therapist", site_a)
    assert (
        "Therapist&#x27;s own" in _signed_in(coordinator_a).get("/calendar-feeds/").content.decode()
    )
    listed = _signed_in(therapist_a).get("/calendar-feeds/").content.decode()
    assert "Therapist&#x27;s own" in listed and "Coordinator&#x27;s site" not in listed
    # another therapist, another site's coordinator: not found, nothing changes
    for user in (other, coordinator_b):
        assert _signed_in(user).post(f"/calendar-feeds/{theirs.pk}/revoke/").status_code == 404
    assert _signed_in(therapist_a).post(f"/calendar-feeds/{ours.pk}/revoke/").status_code == 404
    assert not CalendarFeed.objects.filter(revoked_at__isnull=False).exists()
    assert Client().get(f"/feeds/{theirs_token}.ics").status_code == 200
    # the site's coordinator revokes the therapist's feed (a lost phone, a leaver)
    assert _signed_in(coordinator_a).post(f"/calendar-feeds/{theirs.pk}/revoke/").status_code == 302
    assert Client().get(f"/feeds/{theirs_token}.ics").status_code == 404


def test_last_modified_never_goes_back_when_a_session_leaves_the_feed(
    site_a: Any, coordinator_a: Any
) -> None:
    """A feed that loses sessions changes although no session row did: Last-Modified moves on,
    so that a client asking If-Modified-Since gets the new calendar, not a 304."""
    enrol_mapp(site_a, "RIV-0042", coordinator_a)
    _, token = services.feed_create(
        owner=coordinator_a, scope="site", target=site_a.pk, name="Site A"
    )
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    with time_machine.travel(start, tick=False):
        first = Client().get(f"/feeds/{token}.ics")
    coordinator_a.staff_profile.sites.remove(site_a)
    with time_machine.travel(start + timedelta(minutes=10), tick=False):
        later = Client().get(
            f"/feeds/{token}.ics", headers={"if-modified-since": first["Last-Modified"]}
        )
    assert later.status_code == 200
    assert later["Last-Modified"] == http_date((start + timedelta(minutes=10)).timestamp())
