"""When a non-urgent message may go: quiet hours and marketing hours.

Everything here is pure: an aware datetime in, the adjusted aware UTC datetime
out, so callers decide "now" and tests control time. The dispatcher sends a
``queued`` message once ``due_at`` has passed; holding a message is only a
matter of giving it a later ``due_at`` when it is created.

* **Quiet hours** (default 22:00 to 08:00) are read in the recipient's local
  time. A message due inside them waits until they end there.
* **Marketing hours** (default 08:00 to 20:00, Monday to Saturday) are read in
  one zone, ``SMSGW_MARKETING_ZONE`` (Europe/Paris: the French rules for marketing
  SMS). A campaign message due outside them waits for the next window.

The recipient's zone comes from phonenumbers (:func:`zone_for_number`). A
country with several zones is narrowed to the zone of the number's own range
when phonenumbers knows it (``+34 6…`` Madrid rather than the Canaries,
``+7 9…`` Moscow), and otherwise the zone with the median UTC offset at that
moment is taken (ties: the first name in alphabetical order), so the choice
is deterministic and at worst a few hours off for the edges of the country.
A number whose zone is unknown gets ``SMSGW_QUIET_HOURS_FALLBACK_ZONE``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import phonenumbers
from phonenumbers import NumberParseException, timezone

from smsgateway.config import Settings

# A quiet-hours or marketing-hours shift always lands within a week; a fixed
# point of both is found in a few rounds (their windows always overlap).
_MAX_ROUNDS = 16
# How a reminder that cannot wait for the end of quiet hours goes early instead.
_BEFORE_QUIET = timedelta(minutes=1)


def zone_for_number(number: str, when: datetime, fallback: str) -> ZoneInfo:
    """The time zone a recipient most likely reads ``when`` in (see the module doc)."""
    candidates = _candidate_zones(number)
    if not candidates:
        return ZoneInfo(fallback)
    if len(candidates) == 1:
        return ZoneInfo(candidates[0])
    zones = sorted(
        (ZoneInfo(name) for name in candidates),
        key=lambda zone: (when.astimezone(zone).utcoffset() or timedelta(0), zone.key),
    )
    return zones[(len(zones) - 1) // 2]


@lru_cache(maxsize=4096)
def _candidate_zones(number: str) -> tuple[str, ...]:
    try:
        parsed = phonenumbers.parse(number, None)
    except NumberParseException:
        return ()
    unknown = timezone.UNKNOWN_TIMEZONE
    by_number = [z for z in timezone.time_zones_for_number(parsed) if z != unknown]
    by_range = [z for z in timezone.time_zones_for_geographical_number(parsed) if z != unknown]
    if not by_number:
        return tuple(by_range)
    narrowed = [z for z in by_number if z in by_range]
    return tuple(narrowed or by_number)


def in_quiet_hours(when: datetime, number: str, settings: Settings) -> bool:
    """Whether ``when`` falls in the recipient's quiet hours (False when they are off)."""
    if not settings.quiet_hours.enabled:
        return False
    local = when.astimezone(zone_for_number(number, when, settings.quiet_hours.fallback_zone))
    return _quiet_start(local, settings) is not None


def after_quiet_hours(when: datetime, number: str, settings: Settings) -> datetime:
    """``when``, or the end of the recipient's quiet hours if ``when`` falls in them."""
    utc = when.astimezone(UTC)
    if not settings.quiet_hours.enabled:
        return utc
    zone = zone_for_number(number, utc, settings.quiet_hours.fallback_zone)
    local = utc.astimezone(zone)
    started = _quiet_start(local, settings)
    if started is None:
        return utc
    wraps = settings.quiet_hours.end < settings.quiet_hours.start  # over midnight
    end_day = started + timedelta(days=1) if wraps else started
    return _at(end_day, settings.quiet_hours.end, zone)


def before_quiet_hours(when: datetime, number: str, settings: Settings) -> datetime:
    """``when``, or the minute before the recipient's quiet hours began if it falls in them.

    For a reminder that would otherwise wait past the moment it reminds of.
    """
    utc = when.astimezone(UTC)
    if not settings.quiet_hours.enabled:
        return utc
    zone = zone_for_number(number, utc, settings.quiet_hours.fallback_zone)
    started = _quiet_start(utc.astimezone(zone), settings)
    if started is None:
        return utc
    return _at(started, settings.quiet_hours.start, zone) - _BEFORE_QUIET


def _quiet_start(local: datetime, settings: Settings) -> date | None:
    """The local day quiet hours covering ``local`` began on, or None outside them."""
    start, end = settings.quiet_hours.start, settings.quiet_hours.end
    now = local.time()
    if start < end:  # e.g. 00:00-07:00, within one day
        return local.date() if start <= now < end else None
    if now >= start:  # e.g. 22:00-08:00: the evening part
        return local.date()
    if now < end:  # the morning part began the day before
        return local.date() - timedelta(days=1)
    return None


def in_marketing_hours(when: datetime, settings: Settings) -> datetime:
    """``when``, or the opening of the next marketing window (days and hours, one zone)."""
    utc = when.astimezone(UTC)
    if not settings.marketing.hours_enabled:
        return utc
    zone = ZoneInfo(settings.marketing.zone)
    today = utc.astimezone(zone).date()
    for offset in range(8):
        day = today + timedelta(days=offset)
        if day.isoweekday() not in settings.marketing.days:
            continue
        opens = _at(day, settings.marketing.hours_start, zone)
        closes = _at(day, settings.marketing.hours_end, zone)
        if utc >= closes:
            continue
        return max(utc, opens)
    raise AssertionError("marketing_days is validated to hold at least one weekday")


def campaign_due(when: datetime, number: str, settings: Settings, *, quiet: bool) -> datetime:
    """The earliest moment from ``when`` inside marketing hours and, if ``quiet``,
    outside the recipient's quiet hours.

    Both windows only ever move a time forward, so applying them in turn until
    neither moves it gives the earliest moment both allow.
    """
    current = when.astimezone(UTC)
    for _ in range(_MAX_ROUNDS):
        moved = in_marketing_hours(current, settings)
        if quiet:
            moved = after_quiet_hours(moved, number, settings)
        if moved == current:
            return current
        current = moved
    return current


def _at(day: date, clock: time, zone: ZoneInfo) -> datetime:
    """``clock`` on ``day`` in ``zone``, as UTC."""
    return datetime.combine(day, clock, tzinfo=zone).astimezone(UTC)
