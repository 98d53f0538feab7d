"""The bad-input sweep of the admin: nasty values in every scheduling and protocol admin form,
object URL and list query string, as a superuser and as a coordinator with admin access. Never
a 500: a form re-renders with its errors, a bad id or filter is a redirect or a 404, and an
answer that is an error has written nothing."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.admin.options import ModelAdmin
from django.contrib.auth.models import User
from django.db import connection
from django.db.models import Model
from django.test import Client
from django.urls import reverse

from scheduling.models import (
    CheckInOutcome,
    Dyad,
    OpeningHours,
    Reminder,
    ScheduledSession,
    Site,
    SiteClosure,
    Unavailability,
)
from scheduling.services import access_log_record, session_set_status
from tests.conftest import enrol_mapp, once_over

pytestmark = pytest.mark.django_db

NASTY = [
    "",
    "\x00",
    "x" * 10_000,
    "2027-02-30",
    "9999-12-31",
    "0001-01-01",
    "²",
    "9" * 40,
    "-1",
    "ü\u202e<script>x</script>",
    "' OR 1=1 --",
]
#: what goes into the list's query strings (a 10,000-character value stays: URLs allow it)
QUERY_VALUES = ["\x00", "x" * 10_000, "²", "9" * 40, "9999-12-31"]
BAD_IDS = ["abc", "²", "9" * 40, "-1", "0", "1.5", "%00", "\u0661"]
#: answers that are not a failure of the server
FINE = {200, 302, 400, 403, 404, 405}
APPS = ("scheduling", "protocol")
ADMINS: list[tuple[type[Model], ModelAdmin[Any]]] = sorted(
    ((m, a) for m, a in admin.site._registry.items() if m._meta.app_label in APPS),
    key=lambda pair: pair[0].__name__,
)
MODEL_IDS = [model.__name__ for model, _ in ADMINS]
#: the models whose changes are kept in an audit history
HISTORY_IDS = [model.__name__ for model, _ in ADMINS if hasattr(model, "history")]
#: the models a staff user edits here (the clinical records and the log are read-only, and
#: the world's protocol version is active, so read-only too)
EDITABLE_IDS = ["Dyad", "Participant", "Room", "Site", "StaffProfile", "Unavailability"]


class _FormFields(HTMLParser):
    """The names and current values of a rendered admin form's fields."""

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, str] = {}
        self._select: str | None = None
        self._textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        name = found.get("name", "")
        if tag == "input" and name and name != "csrfmiddlewaretoken":
            kind = found.get("type", "text")
            if kind in ("submit", "button", "file"):
                return
            if kind in ("checkbox", "radio"):
                if "checked" in found:
                    self.values[name] = found.get("value", "on")
                else:
                    self.values.setdefault(name, "")
                return
            self.values[name] = found.get("value", "")
        elif tag == "select" and name:
            self._select = name
            self.values.setdefault(name, "")
        elif tag == "option" and self._select and "selected" in found:
            self.values[self._select] = found.get("value", "")
        elif tag == "textarea" and name:
            self._textarea = name
            self.values[name] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None

    def handle_data(self, data: str) -> None:
        if self._textarea:
            self.values[self._textarea] += data


def form_fields(page: str) -> dict[str, str]:
    parser = _FormFields()
    parser.feed(page.split('id="content-main"', 1)[-1])  # the object's form, not the header
    return parser.values


def rows() -> tuple[int, ...]:
    """Every row count of the two apps, audit history included (one query: the sweep asks
    before and after each of its thousands of answers)."""
    tables = [
        model._meta.db_table
        for label in APPS
        for model in apps.get_app_config(label).get_models()
        if model._meta.managed and not model._meta.proxy and model.__name__ != "AccessLog"
    ]
    counts = ", ".join(f'(SELECT count(*) FROM "{table}")' for table in tables)  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {counts}")
        return tuple(cursor.fetchone())


def url(model: type[Model], view: str, *args: Any) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def fine(response: Any, what: Any) -> None:
    assert response.status_code in FINE, (response.status_code, what)


def shows_errors(page: str) -> bool:
    return 'class="errornote"' in page or 'class="errorlist' in page


@pytest.fixture
def world(site_a: Site, coordinator_a: User) -> dict[type[Model], Model]:
    """An object of every model: a course with a missed session (a deviation), a closure, an
    unavailability, a record access."""
    course = enrol_mapp(site_a, "P-001", coordinator_a)
    session = ScheduledSession.objects.get(course=course, key="phone-1.2")
    with once_over(session):
        session_set_status(session=session, status="missed", by=coordinator_a, reason="no answer")
    SiteClosure.objects.create(site=site_a, date=datetime(2027, 7, 5, tzinfo=UTC).date())
    Unavailability.objects.create(
        user=course.dyad.therapist_a, start=session.start, end=session.end, reason="training"
    )
    access_log_record(user=coordinator_a, participant=course.participant, door="page", route="x")
    CheckInOutcome.objects.create(session=session, outcome="no_answer", recorded_by=coordinator_a)
    Reminder.objects.create(
        site=site_a,
        session=session,
        participant=course.participant,
        message="upcoming",
        channel="email",
        due_at=session.start,
        session_start=session.start,
        status="failed",
        reason="refused",
        idempotency_key=f"{session.uid}/bad-input",
    )
    found: dict[type[Model], Model] = {}
    for model, _ in ADMINS:
        first = model._default_manager.order_by("pk").first()
        if first is not None:
            found[model] = first
    return found


@pytest.fixture(params=["superuser", "coordinator"])
def staff_client(request: pytest.FixtureRequest, client: Client, coordinator_a: User) -> Client:
    if request.param == "superuser":
        client.force_login(User.objects.create_superuser("root", password="root-pass-1234"))
    else:
        coordinator_a.is_staff = True
        coordinator_a.save()
        client.force_login(coordinator_a)
    return client


def _admin_of(name: str) -> tuple[type[Model], ModelAdmin[Any]]:
    return next((m, a) for m, a in ADMINS if m.__name__ == name)


def _filter_parameters(model: type[Model], model_admin: ModelAdmin[Any]) -> list[str]:
    names = ["q", "o", "p", "_to_field"] if model_admin.search_fields else ["o", "p", "_to_field"]
    for entry in model_admin.list_filter:
        path = entry[0] if isinstance(entry, tuple) else entry
        if isinstance(path, str):
            names += [path, f"{path}__exact", f"{path}__id__exact", f"{path}__isnull"]
    if model_admin.date_hierarchy:
        names += [f"{model_admin.date_hierarchy}__{part}" for part in ("year", "month", "day")]
    return names


def _text_filters(model_admin: ModelAdmin[Any]) -> list[str]:
    """The list's filters on a text column (status, kind, role, door)."""
    names = [entry for entry in model_admin.list_filter if isinstance(entry, str)]
    return [
        n for n in names if model_admin.model._meta.get_field(n).get_internal_type() == "CharField"
    ]


# --- the lists -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", MODEL_IDS)
def test_list_query_strings_are_never_a_500(staff_client: Client, world, name) -> None:
    model, model_admin = _admin_of(name)
    changelist = url(model, "changelist")
    for parameter in _filter_parameters(model, model_admin):
        for value in QUERY_VALUES:
            fine(staff_client.get(changelist, {parameter: value}), (parameter, value))


@pytest.mark.parametrize("name", [m.__name__ for m, a in ADMINS if _text_filters(a)])
def test_a_filter_with_a_nul_is_not_a_500(client: Client, world, name) -> None:
    client.force_login(User.objects.create_superuser("root", password="root-pass-1234"))
    client.raise_request_exception = False
    model, model_admin = _admin_of(name)
    for field in _text_filters(model_admin):
        fine(client.get(url(model, "changelist"), {field: "\x00"}), field)


DATE_HIERARCHY_EDGES = [
    {"year": "2027", "month": "2", "day": "30"},
    {"year": "2027", "month": "13"},
    {"year": "0", "month": "1"},
]
#: the end of a day, month or year after 9999-12-31 overflows in Django's ChangeList
#: (django/contrib/admin/views/main.py, get_filters: ``from_date + timedelta(days=1)``, and
#: ``replace(year=from_date.year + 1)``), outside the try that turns a bad date into a redirect
DATE_HIERARCHY_OVERFLOWS = [
    {"year": "9" * 40},
    {"year": "9999", "month": "12", "day": "31"},
    {"year": "9999", "month": "12"},
    {"year": "9999"},
]


def _hierarchies() -> Iterator[tuple[str, str]]:
    for model, model_admin in ADMINS:
        if model_admin.date_hierarchy:
            yield model.__name__, model_admin.date_hierarchy


@pytest.mark.parametrize(("name", "field"), list(_hierarchies()))
def test_date_hierarchy_edges_are_never_a_500(staff_client: Client, world, name, field) -> None:
    model, _ = _admin_of(name)
    for edge in DATE_HIERARCHY_EDGES:
        query = {f"{field}__{part}": value for part, value in edge.items()}
        fine(staff_client.get(url(model, "changelist"), query), query)


@pytest.mark.parametrize(("name", "field"), list(_hierarchies()))
def test_date_hierarchy_at_the_end_of_time_is_not_a_500(client: Client, world, name, field) -> None:
    client.force_login(User.objects.create_superuser("root", password="root-pass-1234"))
    model, _ = _admin_of(name)
    for edge in DATE_HIERARCHY_OVERFLOWS:
        query = {f"{field}__{part}": value for part, value in edge.items()}
        client.raise_request_exception = False
        fine(client.get(url(model, "changelist"), query), query)


# --- object URLs ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", MODEL_IDS)
def test_bad_object_ids_are_never_a_500(staff_client: Client, world, name) -> None:
    model, _ = _admin_of(name)
    before = rows()
    base = url(model, "changelist")
    for bad in BAD_IDS:
        for view in ("change", "delete", "history"):
            address = f"{base}{bad}/{view}/"
            fine(staff_client.get(address), address)
            fine(staff_client.post(address, {"post": "yes"}), address)
        fine(staff_client.get(f"{base}{bad}/"), bad)
    assert rows() == before


@pytest.mark.parametrize("name", HISTORY_IDS)
def test_bad_history_version_ids_are_never_a_500(staff_client: Client, world, name) -> None:
    model, _ = _admin_of(name)
    before = rows()
    history = url(model, "history", world[model].pk)
    for bad in [*BAD_IDS, "999999999"]:
        fine(staff_client.get(f"{history}{bad}/"), bad)
        fine(staff_client.post(f"{history}{bad}/", {"history_change_reason": "x"}), bad)
    assert rows() == before


@pytest.mark.parametrize("name", ["Participant", "ScheduledSession", "Site"])
def test_a_superscript_history_version_is_not_a_500(client: Client, world, name) -> None:
    client.force_login(User.objects.create_superuser("root", password="root-pass-1234"))
    client.raise_request_exception = False
    model, _ = _admin_of(name)
    fine(client.get(f"{url(model, 'history', world[model].pk)}²/"), name)


# --- add and change forms ------------------------------------------------------------------


def _forms(client: Client, model: type[Model], obj: Model | None) -> Iterator[str]:
    """The add form and the change form of ``obj`` that the user may open."""
    for address in (url(model, "add"), *([url(model, "change", obj.pk)] if obj else [])):
        page = client.get(address)
        if page.status_code == 200 and "<form" in page.content.decode():
            yield address


def _post_and_check(client: Client, address: str, data: dict[str, str], what: Any) -> None:
    before = rows()
    response = client.post(address, data)
    fine(response, what)
    if response.status_code != 302:  # an error: shown, and nothing written
        if response.status_code == 200:
            assert shows_errors(response.content.decode()), what
        assert rows() == before, what


@pytest.mark.parametrize("name", MODEL_IDS)
def test_every_field_at_once_with_nasty_values(staff_client: Client, world, name) -> None:
    model, _ = _admin_of(name)
    for address in _forms(staff_client, model, world.get(model)):
        names = list(form_fields(staff_client.get(address).content.decode()))
        for value in NASTY:
            data = dict.fromkeys(names, value)
            _post_and_check(staff_client, address, data, (address, value))


@pytest.mark.parametrize("value", ["abc", "\x00", "²"])
@pytest.mark.parametrize("name", [m.__name__ for m, a in ADMINS if a.autocomplete_fields])
def test_text_in_an_autocomplete_field_is_not_a_500(client: Client, world, name, value) -> None:
    client.force_login(User.objects.create_superuser("root", password="root-pass-1234"))
    client.raise_request_exception = False
    model, model_admin = _admin_of(name)
    data = dict.fromkeys(model_admin.autocomplete_fields, value)
    fine(client.post(url(model, "add"), data), name)


#: one field at a time in an otherwise valid form: what reaches the model and the database
ONE_AT_A_TIME = ["\x00", "x" * 10_000, "9999-12-31", "0001-01-01", "9" * 40, "²"]


@pytest.mark.parametrize("name", EDITABLE_IDS)
def test_one_nasty_field_in_a_valid_change_form(staff_client: Client, world, name) -> None:
    model, _ = _admin_of(name)
    obj = world[model]
    address = url(model, "change", obj.pk)
    page = staff_client.get(address)
    assert page.status_code == 200 and "_save" in page.content.decode(), name
    valid = form_fields(page.content.decode())
    # a field of the object and of each inline's first row (the others are the same fields)
    names = [n for n in valid if not re.search(r"-[1-9]\d*-", n) and "-TOTAL_FORMS" not in n]
    for field in names:
        for value in ONE_AT_A_TIME:
            data = {**valid, field: value}
            _post_and_check(staff_client, address, data, (field, value[:20]))
            obj.refresh_from_db()


# --- dates typed in the admin: one year check ------------------------------------------------


@pytest.mark.parametrize("day", ["9999-12-31", "0001-01-01", "2101-01-01", "1999-12-31"])
def test_implausible_dates_in_admin_forms_are_refused(
    staff_client: Client, world, site_a, day
) -> None:
    """A closure or an unavailability in year 9999 would be stored and break the planner's
    date arithmetic later: the admin's forms refuse them, with the year range to use."""
    site_page = url(Site, "change", site_a.pk)
    data = form_fields(staff_client.get(site_page).content.decode())
    data["closures-0-date"] = day
    before = rows()
    response = staff_client.post(site_page, data)
    assert response.status_code == 200
    assert "Choose a date between the years 2000 and 2100" in response.content.decode()
    add = url(Unavailability, "add")
    therapist = world[Unavailability].user_id
    start = {"start_0": day, "start_1": "09:00", "end_0": "2027-03-01", "end_1": "10:00"}
    response = staff_client.post(add, {"user": therapist, **start, "reason": "typo"})
    assert response.status_code == 200
    assert "Choose a date between the years 2000 and 2100" in response.content.decode()
    assert rows() == before
    # the same form with a plausible date is saved: the refusal was the year's
    start["start_0"] = "2027-02-28"
    response = staff_client.post(add, {"user": therapist, **start, "reason": "course"})
    assert response.status_code == 302


# --- set-up rows in the wrong order: said in the clinic's words --------------------------------


def test_set_up_rows_in_the_wrong_order_say_what_to_do(staff_client: Client, world, site_a) -> None:
    """Closing before opening, a dyad of one person, an unavailability that ends before it
    starts: each is a field error that says what to choose, not "Constraint
    “opening_hours_order” is violated"; nothing is written."""
    dyad = world[Dyad]
    therapist = dyad.therapist_a_id
    before = rows()
    posts = {
        url(OpeningHours, "add"): (
            {"site": site_a.pk, "weekday": "5", "opens": "18:00", "closes": "08:00"},
            "close after it opens",
        ),
        url(Dyad, "add"): (
            {"site": site_a.pk, "name": "Solo", "therapist_a": therapist, "therapist_b": therapist},
            "two different therapists",
        ),
        url(Unavailability, "add"): (
            {
                "user": therapist,
                **{"start_0": "2027-03-02", "start_1": "09:00"},
                **{"end_0": "2027-03-01", "end_1": "09:00"},
                "reason": "typo",
            },
            "must end after it starts",
        ),
    }
    for address, (data, said) in posts.items():
        page = staff_client.post(address, data).content.decode()
        assert "Constraint" not in page, address
        assert said in page, address
    assert rows() == before
