"""The "Calendar feeds" page: a staff member's live calendar subscriptions (scheduling/feeds.py
answers them). A new feed's secret address is shown once, in the answer to the form that
creates it, and never stored (only its hash): no page, log or session holds it afterwards."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from scheduling import access, selectors, services
from scheduling.forms import FeedForm
from scheduling.models import CalendarFeed, Participant


@login_required
def calendar_feeds(request: HttpRequest) -> HttpResponse:
    """List the feeds the user may see; create one (its address is shown once)."""
    if not access.allows(request.user, access.Action.ADD, CalendarFeed):
        raise Http404("Calendar feeds are for staff members of a site.")
    choices = selectors.feed_calendar_choices(request.user)
    form = FeedForm(request.POST or None, choices=choices)
    if request.method == "POST" and form.is_valid():
        scope, _, target = form.cleaned_data["calendar"].partition(":")
        try:
            feed, token = services.feed_create(
                owner=_user(request),
                scope=scope,
                target=int(target) if target else None,
                name=form.cleaned_data["name"],
            )
        except services.SchedulingError as exc:
            for field, errors in exc.errors.items():
                for error in errors:
                    form.add_error(field if field in form.fields else None, error)
        else:
            shows = dict(choices).get(form.cleaned_data["calendar"], "")
            return _created(request, feed, token, shows=shows, back=reverse("calendar-feeds"))
    context = {
        "nav": "feeds",
        "form": form,
        "feeds": selectors.feeds_list(request.user),
        "user_id": request.user.pk,
    }
    return render(request, "scheduling/feeds.html", context, status=400 if form.errors else 200)


@login_required
@require_POST
def calendar_feed_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    try:
        feed = access.get(CalendarFeed.objects.all(), request.user, access.Action.VIEW, pk=pk)
    except CalendarFeed.DoesNotExist as exc:
        raise Http404("No such calendar feed.") from exc
    if not access.can(request.user, access.Action.CHANGE, feed):
        raise PermissionDenied("Only the feed's owner or a coordinator revokes it.")
    services.feed_revoke(feed=feed, by=_user(request))
    messages.success(
        request,
        f"Feed “{feed.name}” revoked: its address now answers “not found”, and calendar apps "
        "subscribed to it stop updating.",
    )
    return redirect("calendar-feeds")


@login_required
@require_POST
def participant_calendar_feed(request: HttpRequest, pk: int) -> HttpResponse:
    """A participant's own feed (their sessions as they read them: no study code, no room),
    issued by a coordinator, who gives the address to the participant."""
    try:
        found = access.get(Participant.objects.select_related("site"), request.user, pk=pk)
    except Participant.DoesNotExist as exc:
        raise Http404("No such participant.") from exc
    if not access.can(request.user, access.Action.CHANGE, found):
        raise PermissionDenied("Only coordinators and administrators issue a participant's feed.")
    try:
        feed, token = services.feed_create(
            owner=_user(request),
            scope=CalendarFeed.Scope.PARTICIPANT,
            target=found.pk,
            name=f"{found.site.name} appointments",
            for_participant=True,
        )
    except services.SchedulingError as exc:
        raise Http404("No such participant.") from exc
    back = reverse("participant", args=[found.pk])
    return _created(request, feed, token, shows=found.code, back=back)


def feed_addresses(token: str) -> tuple[str, str]:
    """The feed's address (the site's scheme, https in production) and its webcal:// form,
    which a click opens in the device's calendar app."""
    address = f"{settings.SITE_URL}{reverse('feed', args=[token])}"
    parts = urlsplit(address)
    return address, f"webcal://{parts.netloc}{parts.path}"


def _created(
    request: HttpRequest, feed: CalendarFeed, token: str, *, shows: str, back: str
) -> HttpResponse:
    address, webcal = feed_addresses(token)
    context = {
        "nav": "feeds",
        "feed": feed,
        "address": address,
        "webcal": webcal,
        "back": back,
        "shows": shows,
    }
    # answered, not redirected: the address is in this page only (no-store, never stored)
    return render(request, "scheduling/feed_created.html", context)


def _user(request: HttpRequest) -> User:
    user = request.user
    assert isinstance(user, User)  # login_required
    return user
