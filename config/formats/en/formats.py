"""How Django shows a date-time it renders by default (the admin's lists, read-only fields
and audit history tables): with the zone's abbreviation, never a bare time that might be UTC.
Times are shown in the active zone (the site's: scheduling.middleware and the admin)."""

DATETIME_FORMAT = "D j M Y H:i T"
SHORT_DATETIME_FORMAT = "D j M Y H:i T"
