"""``{% demo_hint %}``: on a development server (DEBUG) the landing and login pages say how to
sign in to the demo clinic; in production it renders nothing."""

from __future__ import annotations

from django import template
from django.conf import settings

register = template.Library()


@register.inclusion_tag("includes/demo_hint.html")
def demo_hint() -> dict[str, object]:
    if not settings.DEBUG:
        return {"show": False}
    from scheduling.management.commands.seed_demo import LOGINS

    return {"show": True, "logins": LOGINS.items()}
