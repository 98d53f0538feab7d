"""gunicorn's settings for the web container (Dockerfile and docker-compose.yml pass ``-c``).

The access log records the path without its query string (``%(U)s``, not the request line
``%(r)s``) and no Referer (``%(f)s``): addresses can hold identifiers, and log files are kept
longer and read more widely than the database. A calendar feed's address holds its secret
token: the logger class below writes ``/feeds/<redacted>`` instead."""

from __future__ import annotations

from typing import Any

from gunicorn.glogging import Logger  # type: ignore[import-untyped]

from config.security import redact_feed_tokens


class FeedTokensRedacted(Logger):  # type: ignore[misc]  # gunicorn ships no type information
    """gunicorn's logger, with feed tokens taken out of every access log atom (the path, the
    request line, the Referer, headers and environment variables a format may name)."""

    def atoms(self, resp: Any, req: Any, environ: Any, request_time: Any) -> dict[str, Any]:
        atoms: dict[str, Any] = super().atoms(resp, req, environ, request_time)
        return {
            key: redact_feed_tokens(value) if isinstance(value, str) else value
            for key, value in atoms.items()
        }


accesslog = "-"
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s "%(a)s" %(M)sms'
logger_class = FeedTokensRedacted
