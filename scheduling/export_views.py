"""Export doors of the staff pages: the Exports page (a site's sessions as CSV, with a range
and filters) and a participant's planned versus actual. Thin: the access policy decides who,
``scheduling.selectors`` reads, ``scheduling.exports`` writes the CSV.

Another site's site or participant is a 404; a site the user sees but may not export is a 403.
A bad range or filter shows the form again with its error (400), never a 500."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    StreamingHttpResponse,
)
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.views.decorators.http import require_GET

from scheduling import access, exports, selectors, services
from scheduling.access import Action
from scheduling.clock import local
from scheduling.forms import SiteSessionsExportForm
from scheduling.models import Participant, Site

#: a byte-order mark first: spreadsheet programs then read the file as UTF-8 (room and staff
#: names with accents); the API leaves it out for programs
EXCEL_BOM = "\ufeff"


def csv_response(lines: Iterator[str], filename: str, *, bom: bool) -> StreamingHttpResponse:
    """A streamed CSV download; the file name carries no PHI."""
    body = _with_bom(lines) if bom else lines
    response = StreamingHttpResponse(body, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def _with_bom(lines: Iterator[str]) -> Iterator[str]:
    yield EXCEL_BOM
    yield from lines


def export_site(request: HttpRequest, pk: int) -> Site:
    """The site for an export: another site's (or an unknown id) is a 404, a site the user
    sees but may not export a 403."""
    site = get_object_or_404(access.scope(Site.objects.all(), request.user), pk=pk)
    if not access.can(request.user, Action.EXPORT, site):
        raise PermissionDenied("Only the site's coordinators and administrators export it.")
    return site


def export_form(site: Site, data: object = None) -> SiteSessionsExportForm:
    choices = selectors.export_filter_choices(site)
    return SiteSessionsExportForm(data, rooms=choices["rooms"], staff=choices["staff"])


def export_participant(request: HttpRequest, pk: int) -> Participant:
    """The participant for planned versus actual: one the user may not see is a 404, one they
    see but may not export (a night attendant) a 403."""
    found = get_object_or_404(
        selectors.visible_participants(request.user).select_related("site"), pk=pk
    )
    if not access.can(request.user, Action.EXPORT, found):
        raise PermissionDenied("Your role does not export a participant's whole course.")
    return found


@login_required
@require_GET
def exports_page(request: HttpRequest) -> HttpResponse:
    """The Exports page: choose a site, a range and filters, and download the CSV."""
    sites = list(selectors.export_sites(request.user))
    if not sites:
        raise PermissionDenied("Exports are for the site's coordinators and administrators.")
    wanted = request.GET.get("site")
    site = next((s for s in sites if s.slug == wanted), None) if wanted else sites[0]
    if site is None:
        raise Http404("No such site.")
    today = local(timezone.now(), site).date()
    first = today.replace(day=1)
    form = export_form(site)
    form.initial = {"from": first, "to": _month_end(first)}
    return _page(request, site, sites, form)


def _month_end(first: date) -> date:
    following = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return date.fromordinal(following.toordinal() - 1)


def _page(
    request: HttpRequest,
    site: Site,
    sites: list[Site],
    form: SiteSessionsExportForm,
    status: int = 200,
) -> HttpResponse:
    context = {
        "nav": "exports",
        "site": site,
        "sites": sites,
        "form": form,
        "zone": site.timezone,
        "columns": exports.SITE_COLUMNS,
        "max_days": exports.MAX_RANGE_DAYS,
    }
    return render(request, "scheduling/exports.html", context, status=status)


@login_required
@require_GET
def site_sessions_export(request: HttpRequest, pk: int) -> HttpResponseBase:
    """The site's sessions in the chosen range as a streamed CSV, or the form with its errors."""
    site = export_site(request, pk)
    form = export_form(site, request.GET)
    if not form.is_valid():
        return _page(request, site, list(selectors.export_sites(request.user)), form, 400)
    filters = form.filters()
    lines = selectors.site_sessions_export(request.user, site, **filters)
    filename = exports.site_filename(site.slug, filters["first"], filters["last"])
    return csv_response(exports.site_sessions_csv(lines), filename, bom=True)


@login_required
@require_GET
def participant_planned_vs_actual(request: HttpRequest, pk: int) -> HttpResponseBase:
    """A participant's planned versus actual, one row per protocol session (logged)."""
    found = export_participant(request, pk)
    lines = selectors.planned_vs_actual(request.user, found)
    services.access_log_record(
        user=request.user, participant=found, door="export", route="participant-planned-vs-actual"
    )
    today = local(timezone.now(), found.site).date()
    filename = exports.participant_filename(found.site.slug, found.pk, today)
    return csv_response(exports.planned_vs_actual_csv(lines), filename, bom=True)
