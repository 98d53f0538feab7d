# mypy: allow-subclassing-any
"""Request parsers for the API. Kept apart from the views: settings name this module, and
importing rest_framework.views while settings load would be circular."""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions, parsers


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, but absurdly deep nesting is a 400 like any other bad JSON (the
    standard library raises RecursionError, which DRF does not turn into a ParseError)."""

    def parse(self, stream: Any, media_type: Any = None, parser_context: Any = None) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise exceptions.ParseError("JSON parse error - nested too deeply") from None
