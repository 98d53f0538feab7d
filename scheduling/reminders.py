"""Reminders, the pure part: rules + a session + the site's clock -> due times; quiet hours.

No ORM and no clock: callers pass ``now`` and plain values. Times are aware datetimes; local
reasoning happens in the site's zone.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta, tzinfo


def in_quiet_hours(moment: datetime, zone: tzinfo, start: time, end: time) -> bool:
    """Whether ``moment`` falls in the site's quiet hours [start, end) local time. The hours
    may run over midnight (21:00-08:00) or not (13:00-14:00); start == end means none."""
    if start == end:
        return False
    local = moment.astimezone(zone).time()
    if start < end:
        return start <= local < end
    return local >= start or local < end


def quiet_hours_end(moment: datetime, zone: tzinfo, start: time, end: time) -> datetime:
    """The first instant at or after ``moment`` outside the quiet hours (``moment`` itself if
    it is outside them), as an aware datetime in ``zone``."""
    if not in_quiet_hours(moment, zone, start, end):
        return moment
    local = moment.astimezone(zone)
    day = local.date()
    if start > end and local.time() >= start:
        day += timedelta(days=1)  # evening: the quiet hours end tomorrow morning
    ends = datetime.combine(day, end, tzinfo=zone)
    # a zone's gap (DST) can make the wall time not exist: fold to a real instant
    return ends.astimezone(zone) if ends > moment else moment
