"""The site's CalDAV page: where coordinators and administrators say which calendar collection
the site's sessions are published to, and see whether publishing works."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods

from scheduling import access, publishing
from scheduling.forms import SiteCalDavForm
from scheduling.models import Site, SiteCalDav


@sensitive_post_parameters("password")  # an error report never shows it
@login_required
@require_http_methods(["GET", "POST"])
def site_caldav(request: HttpRequest, pk: int) -> HttpResponse:
    """Show and change the site's CalDAV settings. Only those who may change the site's set-up
    reach it; for anyone else (another site's, or a role that does not set sites up) it does
    not exist. The password is never sent back to the browser."""
    site = get_object_or_404(
        access.scope(Site.objects.all(), request.user, access.Action.CHANGE), pk=pk
    )
    config = SiteCalDav.objects.filter(site=site).first()
    password_set = bool(config and config.password)  # as stored: a refused form sets none
    form = SiteCalDavForm(request.POST or None, instance=config)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        publishing.site_caldav_set(
            site=site,
            url=data["url"],
            username=data["username"],
            password=data["password"],
            enabled=data["enabled"],
            by=request.user if request.user.is_authenticated else None,
        )
        messages.success(
            request,
            "Saved. The site's sessions are being published to the collection now."
            if data["enabled"]
            else "Saved. Publishing is switched off; the collection keeps what it has.",
        )
        return redirect(reverse("site-caldav", kwargs={"pk": site.pk}))
    context = {
        "site": site,
        "form": form,
        "password_set": password_set,
        "state": publishing.publishing_state(site) if config else None,
    }
    return render(request, "scheduling/site_caldav.html", context)
