"""Response hardening that Django's settings alone do not give: no caching of anything that may
carry protected health information, and access logs without query strings."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

from django.http import HttpRequest, HttpResponseBadRequest, HttpResponseBase, JsonResponse
from django.utils.cache import add_never_cache_headers

#: a query string inside a logged request line: from "?" up to the next space or quote
QUERY_STRING = re.compile(r"\?[^\s\"']*")


class NoStoreMiddleware:
    """Every page, admin page and API response may show a participant: no browser, shared
    proxy or back-forward cache may keep a copy (``Cache-Control: no-store, private``...).

    Placed after WhiteNoise in MIDDLEWARE, so static files (answered by WhiteNoise before this
    runs) keep their long-lived caching headers. A response marked ``own_cache_policy`` keeps
    its own (a calendar feed: ``private, max-age`` for the subscribed calendar client)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        if getattr(response, "own_cache_policy", False):
            return response
        add_never_cache_headers(response)  # no-cache, no-store, must-revalidate, private
        return response


class StripQueryStrings(logging.Filter):
    """Drops query strings from request lines in log records (runserver's ``django.server``
    access log): filters and searches must not leave identifiers in log files."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        stripped = QUERY_STRING.sub("", message)
        if stripped != message:
            record.msg, record.args = stripped, ()
        return True


#: a calendar feed's secret token inside a logged path or request line (scheduling/feeds.py)
FEED_TOKEN = re.compile(r"/feeds/[^/\s\"'?]+")
FEED_REDACTED = "/feeds/<redacted>"


def redact_feed_tokens(text: str) -> str:
    """``text`` with every feed address's token replaced (``/feeds/<redacted>``)."""
    return FEED_TOKEN.sub(FEED_REDACTED, text)


class RedactFeedTokens(logging.Filter):
    """A feed's token is its only credential: no log line may carry it. Set on the loggers
    that name request paths (``django.server``'s access log, ``django.request``'s "Not Found"
    warnings) and on the handlers, for any other logger that might; gunicorn's access log has
    its own logger class (config/gunicorn.py)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_feed_tokens(message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True


#: what a refused NUL answers: the pages and the admin read many values raw (filters, searches)
NUL_REFUSED = (
    "A value in this request contains a null character (\\x00), which no field accepts. "
    "Remove it and send the request again."
)


class RejectNulMiddleware:
    """A NUL is never part of a clinic's input, and PostgreSQL refuses it in text: rather than
    each page, admin filter and search stripping it, a request carrying one in its path, its
    query string or its form fields is a 400 before any view reads it. (JSON bodies are left
    to the API's serializers, which answer with field errors.)"""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if _has_nul(request):
            if request.path_info.startswith("/api/"):
                return JsonResponse({"detail": NUL_REFUSED}, status=400)
            return HttpResponseBadRequest(NUL_REFUSED, content_type="text/plain; charset=utf-8")
        return self.get_response(request)


def _has_nul(request: HttpRequest) -> bool:
    if "\x00" in request.path_info:
        return True
    sources = [request.GET]
    if request.method == "POST" and request.content_type in (
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ):
        sources.append(request.POST)
    return any(
        "\x00" in key or any("\x00" in value for value in values)
        for source in sources
        for key, values in source.lists()
    )
