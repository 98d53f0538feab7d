"""Template filters of the one clock and the one staff name (scheduling.clock):
``{{ session.start|local_text:zone }}`` and ``{{ user|display_name }}``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django import template

from scheduling import clock

register = template.Library()


@register.filter
def local_text(moment: datetime | None, place: Any = None) -> str:
    return clock.local_text(moment, place)


@register.filter
def display_name(user: Any) -> str:
    return clock.display_name(user)


@register.filter
def zone_abbreviation(moment: datetime | None, place: Any = None) -> str:
    """The zone's abbreviation at ``moment`` ("EST" in winter, "EDT" in summer)."""
    return "" if moment is None else clock.local(moment, place).strftime("%Z")
