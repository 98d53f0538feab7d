"""The access policy in templates, for menus: a link the user's role may not follow is not
offered (a blinded assessor never reaches the protocol library, which holds dose plans)."""

from __future__ import annotations

from typing import Any

from django import template

from protocol.models import Protocol
from scheduling import access
from scheduling.models import Site

register = template.Library()


@register.filter
def may_read_protocols(user: Any) -> bool:
    return access.allows(user, access.Action.VIEW, Protocol)


@register.filter
def may_export(user: Any) -> bool:
    """The Exports page: the site's coordinators and administrators."""
    return access.allows(user, access.Action.EXPORT, Site)
