"""Shared fixtures. The shipped protocols are read from their JSON files for pure tests, and are
present in every test database (they load after migrate)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import time_machine

from protocol.spec import ProtocolSpec, parse_document

SHIPPED = Path(__file__).resolve().parent.parent / "protocol" / "shipped"


def shipped_document(slug: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((SHIPPED / f"{slug}.json").read_text())
    return document


def pytest_sessionstart(session: pytest.Session) -> None:
    """The test client and the live server speak plain HTTP: with the production redirect to
    https every request would answer 301. Say so once instead of failing every test."""
    from django.conf import settings

    if settings.SECURE_SSL_REDIRECT:
        raise pytest.UsageError("run the tests with HTTPS=off, as `make test` does")


@pytest.fixture(autouse=True)
def _fast_passwords(settings: Any) -> None:
    """Users are made with passwords throughout; a slow hasher would dominate the suite."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _one_factor(settings: Any) -> None:
    """Most tests sign coordinators in with force_login (and the e2e tests through /login/)
    to test something else: two-factor sign-in is off unless a test asks for ``two_factor``."""
    settings.TWO_FACTOR_REQUIRED = False


@pytest.fixture
def two_factor(settings: Any) -> None:
    """Two-factor sign-in on, as in production."""
    settings.TWO_FACTOR_REQUIRED = True


@pytest.fixture(autouse=True)
def _fresh_token_throttle() -> None:
    """The token endpoint's throttle counts per client address in the cache (real Redis in the
    suite), and every test client is 127.0.0.1: start each test with a clean count. Only that
    key goes: flushing the Redis database would also drop Celery's queues."""
    from django.core.cache import cache

    cache.delete("throttle_token_127.0.0.1")


def enrol_mapp(
    site: Any, code: str, by: Any, start: date = date(2027, 3, 1), dyad: Any = None
) -> Any:
    """A participant enrolled on the shipped mapp-ptsd protocol (a Monday start by default)."""
    from scheduling.services import participant_enrol

    return participant_enrol(
        site=site, code=code, protocol_slug="mapp-ptsd", start_date=start, by=by, dyad=dyad
    )


@pytest.fixture(scope="session")
def mapp_spec() -> ProtocolSpec:
    return parse_document(shipped_document("mapp-ptsd"))


@pytest.fixture(scope="session")
def couples_spec() -> ProtocolSpec:
    return parse_document(shipped_document("mdma-cbct-couples"))


def once_over(session: Any) -> time_machine.travel:
    """Travel, with the clock stopped, to a minute after ``session`` ends: a session can be
    marked completed or missed only once it has started, and the suite's courses lie ahead."""
    return time_machine.travel(session.end + timedelta(minutes=1), tick=False)


# --- personas and sites --------------------------------------------------------------------
# A coordinator and a therapist at site A; a coordinator at site B who must see nothing of A.


def make_staff(username: str, role: str, *sites: Any) -> Any:
    from django.contrib.auth.models import User

    from scheduling.models import StaffProfile

    user = User.objects.create_user(username, password="test-password-1234")
    profile = StaffProfile.objects.create(user=user, role=role)
    profile.sites.set(sites)
    return user


def make_site(
    slug: str,
    timezone: str = "America/New_York",
    *,
    dosing_rooms: int = 2,
    therapy_rooms: int = 3,
    dyads: int = 2,
    assessors: int = 2,
    couples_room: bool = False,
) -> Any:
    """A site open Monday-Friday 08:00-18:00 with rooms, dyads and remote assessors."""
    from datetime import time

    from scheduling.models import Dyad, OpeningHours, Room, Site

    site = Site.objects.create(name=f"Site {slug}", slug=slug, timezone=timezone)
    OpeningHours.objects.bulk_create(
        OpeningHours(site=site, weekday=day, opens=time(8), closes=time(18)) for day in range(5)
    )
    for n in range(1, dosing_rooms + 1):
        places = 2 if couples_room and n == 1 else 1
        Room.objects.create(
            site=site, name=f"{slug} dosing {n}", kind="dosing", overnight_places=places
        )
    for n in range(1, therapy_rooms + 1):
        Room.objects.create(site=site, name=f"{slug} therapy {n}", kind="therapy")
    for n in range(1, dyads + 1):
        a = make_staff(f"{slug}-t{n}a", "therapist", site)
        b = make_staff(f"{slug}-t{n}b", "therapist", site)
        Dyad.objects.create(site=site, name=f"{slug} dyad {n}", therapist_a=a, therapist_b=b)
    for n in range(1, assessors + 1):
        make_staff(f"{slug}-assessor{n}", "assessor", site)
    return site


@pytest.fixture
def site_a(db: Any) -> Any:
    return make_site("a")


@pytest.fixture
def site_b(db: Any) -> Any:
    return make_site("b", "Europe/London")


@pytest.fixture
def coordinator_a(site_a: Any) -> Any:
    return make_staff("coordinator-a", "coordinator", site_a)


@pytest.fixture
def therapist_a(site_a: Any) -> Any:
    from scheduling.models import Dyad

    return Dyad.objects.filter(site=site_a).first().therapist_a  # type: ignore[union-attr]


@pytest.fixture
def coordinator_b(site_b: Any) -> Any:
    return make_staff("coordinator-b", "coordinator", site_b)


# --- reminder channels: a real SMTP server and the SMS provider's stand-in (tests/servers.py) ---


@pytest.fixture
def smtp_server(settings: Any) -> Iterator[Any]:
    """A real SMTP server on loopback; Django's email goes to it for this test."""
    from tests.servers import SmtpServer, channel_settings

    with SmtpServer() as server:
        for name, value in channel_settings(server, None).items():
            setattr(settings, name, value)
        yield server


@pytest.fixture
def sms_provider(settings: Any) -> Iterator[Any]:
    """The SMS provider's API imitated on loopback; SMS_BACKEND=twilio points at it."""
    from tests.servers import SmsProviderStub, channel_settings

    with SmsProviderStub() as stub:
        for name, value in channel_settings(None, stub).items():
            setattr(settings, name, value)
        yield stub


@pytest.fixture(autouse=True)
def _fresh_protocol_words() -> Iterator[None]:
    """Senders keep an active protocol version's words for the life of the process (it never
    changes); a test that edits one behind the model's back must not leave them to the next."""
    yield
    from scheduling import messages

    messages._FACTS.clear()
