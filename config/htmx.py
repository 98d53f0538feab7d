"""htmx answers that must leave the page: a partial request (a preview, calendar paging) that
is answered with a redirect (the sign-in ended, a second factor is due) would otherwise be
followed inside the XMLHttpRequest, and htmx would swap in the part of the sign-in page it was
told to select: nothing. The section then vanishes without a word. Instead the browser is told
to go there itself (``HX-Redirect``), so the person sees the sign-in page and comes back."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, HttpResponseBase


class HtmxRedirectMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        htmx = request.headers.get("HX-Request") == "true"
        if htmx and response.status_code in (301, 302, 303, 307, 308) and "Location" in response:
            answer = HttpResponse(status=200)
            answer["HX-Redirect"] = response["Location"]
            for name, value in response.items():  # cookies and caching headers stay
                if name.lower() not in ("location", "content-length", "content-type"):
                    answer.setdefault(name, value)
            answer.cookies = response.cookies
            return answer
        return response
