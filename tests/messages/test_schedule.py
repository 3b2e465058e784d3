"""Quiet hours and marketing hours: pure due-time rules, then through POST /v1/messages."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import httpx
import pytest
from pydantic import ValidationError

from smsgateway.config import MarketingHoursSettings, QuietHoursSettings, Settings
from smsgateway.messages.dispatcher import Dispatcher
from smsgateway.messages.schedule import (
    after_quiet_hours,
    before_quiet_hours,
    campaign_due,
    in_marketing_hours,
    in_quiet_hours,
    zone_for_number,
)
from smsgateway.providers.fake import FakeProvider
from smsgateway.runtime import Runtime
from tests.factories import make_client
from tests.helpers import balance, make_due, send_message

PARIS_NUMBER = "+33612345678"
NEW_YORK_NUMBER = "+12125551234"
SYDNEY_NUMBER = "+61412345678"
PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")
# Friday 20 November 2026, 23:30 UTC: 00:30 on Saturday in Paris, 18:30 on Friday in New York.
NIGHT_IN_PARIS = datetime(2026, 11, 20, 23, 30, tzinfo=UTC)
DEFAULTS = Settings()


def paris(year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=PARIS).astimezone(UTC)


# -- time zones -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "zone"),
    [
        (PARIS_NUMBER, "Europe/Paris"),
        (NEW_YORK_NUMBER, "America/New_York"),
        ("+14155550123", "America/Los_Angeles"),
        # Countries with several zones: the number's own range decides when known.
        ("+34612345678", "Europe/Madrid"),  # not Atlantic/Canary
        (SYDNEY_NUMBER, "Australia/Sydney"),
        ("+79161234567", "Europe/Moscow"),
    ],
)
def test_the_zone_comes_from_the_number(number: str, zone: str) -> None:
    assert zone_for_number(number, NIGHT_IN_PARIS, "UTC").key == zone


def test_a_number_without_a_zone_gets_the_fallback() -> None:
    assert zone_for_number("+33 not a number", NIGHT_IN_PARIS, "Europe/Paris").key == (
        "Europe/Paris"
    )


def test_several_zones_left_give_the_median_offset_deterministically() -> None:
    # +1 555 is not a geographic range: phonenumbers offers every +1 zone.
    picks = {zone_for_number("+15555550100", NIGHT_IN_PARIS, "UTC").key for _ in range(3)}
    assert len(picks) == 1
    offset = NIGHT_IN_PARIS.astimezone(ZoneInfo(picks.pop())).utcoffset()
    # The middle of the North American zones (Pacific/Guam to Pacific/Honolulu).
    assert offset is not None and timedelta(hours=-6) <= offset <= timedelta(hours=-4)


# -- quiet hours ------------------------------------------------------------------


def test_a_night_in_paris_waits_for_eight_and_new_york_does_not() -> None:
    assert in_quiet_hours(NIGHT_IN_PARIS, PARIS_NUMBER, DEFAULTS)
    assert not in_quiet_hours(NIGHT_IN_PARIS, NEW_YORK_NUMBER, DEFAULTS)
    assert after_quiet_hours(NIGHT_IN_PARIS, PARIS_NUMBER, DEFAULTS) == paris(2026, 11, 21, 8, 0)
    assert after_quiet_hours(NIGHT_IN_PARIS, NEW_YORK_NUMBER, DEFAULTS) == NIGHT_IN_PARIS


@pytest.mark.parametrize(
    ("local", "held_until"),
    [
        ((2026, 11, 20, 21, 59), None),
        ((2026, 11, 20, 22, 0), (2026, 11, 21, 8, 0)),  # the evening part: next morning
        ((2026, 11, 20, 23, 59), (2026, 11, 21, 8, 0)),
        ((2026, 11, 21, 3, 0), (2026, 11, 21, 8, 0)),  # the morning part: same morning
        ((2026, 11, 21, 7, 59), (2026, 11, 21, 8, 0)),
        ((2026, 11, 21, 8, 0), None),
    ],
)
def test_quiet_hours_run_from_ten_to_eight_local(
    local: tuple[int, ...], held_until: tuple[int, ...] | None
) -> None:
    when = paris(*local)
    expected = paris(*held_until) if held_until else when
    assert after_quiet_hours(when, PARIS_NUMBER, DEFAULTS) == expected


def test_quiet_hours_follow_daylight_saving_time() -> None:
    # Paris moves to summer time on 29 March 2026: 08:00 that morning is 06:00 UTC.
    night = datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    assert after_quiet_hours(night, PARIS_NUMBER, DEFAULTS) == datetime(
        2026, 3, 29, 6, 0, tzinfo=UTC
    )


def test_quiet_hours_are_configurable_and_can_be_turned_off() -> None:
    early = Settings(quiet_hours=QuietHoursSettings(start=time(0, 0), end=time(7, 0)))
    assert after_quiet_hours(NIGHT_IN_PARIS, PARIS_NUMBER, early) == paris(2026, 11, 21, 7, 0)
    late_evening = paris(2026, 11, 20, 23, 0)
    assert after_quiet_hours(late_evening, PARIS_NUMBER, early) == late_evening
    off = Settings(quiet_hours=QuietHoursSettings(enabled=False))
    assert after_quiet_hours(NIGHT_IN_PARIS, PARIS_NUMBER, off) == NIGHT_IN_PARIS
    assert not in_quiet_hours(NIGHT_IN_PARIS, PARIS_NUMBER, off)


def test_before_quiet_hours_is_the_minute_before_they_began() -> None:
    assert before_quiet_hours(NIGHT_IN_PARIS, PARIS_NUMBER, DEFAULTS) == paris(2026, 11, 20, 21, 59)
    noon = paris(2026, 11, 20, 12, 0)
    assert before_quiet_hours(noon, PARIS_NUMBER, DEFAULTS) == noon


# -- marketing hours --------------------------------------------------------------


@pytest.mark.parametrize(
    ("local", "expected"),
    [
        ((2026, 11, 23, 7, 0), (2026, 11, 23, 8, 0)),  # Monday, before opening
        ((2026, 11, 23, 12, 0), (2026, 11, 23, 12, 0)),
        ((2026, 11, 21, 19, 59), (2026, 11, 21, 19, 59)),  # Saturday is open
        ((2026, 11, 21, 20, 0), (2026, 11, 23, 8, 0)),  # ... until 20:00, then Monday
        ((2026, 11, 22, 10, 0), (2026, 11, 23, 8, 0)),  # Sunday is closed
    ],
)
def test_marketing_hours_are_eight_to_eight_monday_to_saturday_in_paris(
    local: tuple[int, ...], expected: tuple[int, ...]
) -> None:
    assert in_marketing_hours(paris(*local), DEFAULTS) == paris(*expected)


def test_marketing_days_and_hours_are_configurable() -> None:
    weekdays = Settings(
        marketing=MarketingHoursSettings(days=[1, 2, 3, 4, 5], hours_start=time(9, 30))
    )
    saturday = paris(2026, 11, 21, 12, 0)
    assert in_marketing_hours(saturday, weekdays) == paris(2026, 11, 23, 9, 30)
    off = Settings(marketing=MarketingHoursSettings(hours_enabled=False))
    sunday = paris(2026, 11, 22, 10, 0)
    assert in_marketing_hours(sunday, off) == sunday


def test_a_campaign_message_waits_for_both_windows() -> None:
    monday_morning = paris(2026, 11, 23, 9, 0)
    # 03:00 in New York: held until 08:00 there, 14:00 in Paris, inside marketing hours.
    assert campaign_due(monday_morning, NEW_YORK_NUMBER, DEFAULTS, quiet=True) == datetime(
        2026, 11, 23, 8, 0, tzinfo=NEW_YORK
    )
    assert campaign_due(monday_morning, NEW_YORK_NUMBER, DEFAULTS, quiet=False) == monday_morning
    # 14:00 in Paris is midnight in Sydney; 08:00 there is 22:00 in Paris, after
    # marketing hours: the first moment both allow is Tuesday 08:00 in Paris.
    monday_afternoon = paris(2026, 11, 23, 14, 0)
    assert campaign_due(monday_afternoon, SYDNEY_NUMBER, DEFAULTS, quiet=True) == paris(
        2026, 11, 24, 8, 0
    )


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({"SMSGW_MARKETING_ZONE": "Europe/Atlantis"}, "SMSGW_MARKETING_ZONE"),
        ({"SMSGW_QUIET_HOURS_FALLBACK_ZONE": "nowhere"}, "SMSGW_QUIET_HOURS_FALLBACK_ZONE"),
        (
            {"SMSGW_QUIET_HOURS_START": "08:00", "SMSGW_QUIET_HOURS_END": "08:00"},
            "SMSGW_QUIET_HOURS_START and SMSGW_QUIET_HOURS_END must differ",
        ),
        (
            {"SMSGW_MARKETING_HOURS_START": "20:00", "SMSGW_MARKETING_HOURS_END": "08:00"},
            "SMSGW_MARKETING_HOURS_START must be before SMSGW_MARKETING_HOURS_END",
        ),
        ({"SMSGW_MARKETING_DAYS": "[]"}, "SMSGW_MARKETING_DAYS"),
        ({"SMSGW_MARKETING_DAYS": "[0, 8]"}, "SMSGW_MARKETING_DAYS"),
    ],
)
def test_bad_scheduling_settings_stop_the_service_at_start(
    variables: dict[str, str], named: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=named):
        Settings.from_environment()


# -- through the API --------------------------------------------------------------


def _tonight() -> datetime:
    """23:00 in Paris (17:00 in New York) on a day to come."""
    day = datetime.now(PARIS).date() + timedelta(days=2)
    return datetime.combine(day, time(23, 0), tzinfo=PARIS)


async def test_a_message_asking_for_quiet_hours_is_held_in_paris_not_in_new_york(
    http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    send_at = _tonight()
    in_paris = await send_message(
        http, auth, to=PARIS_NUMBER, text="Hi", send_at=send_at.isoformat(), quiet_hours=True
    )
    in_new_york = await send_message(
        http, auth, to=NEW_YORK_NUMBER, text="Hi", send_at=send_at.isoformat(), quiet_hours=True
    )
    next_morning = datetime.combine(send_at.date() + timedelta(days=1), time(8, 0), PARIS)
    assert datetime.fromisoformat(in_paris["send_at"]) == send_at
    assert datetime.fromisoformat(in_paris["due_at"]) == next_morning
    assert datetime.fromisoformat(in_new_york["due_at"]) == send_at
    assert in_paris["kind"] == in_new_york["kind"] == "transactional"


async def test_direct_sends_are_urgent_unless_they_ask(
    http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    send_at = _tonight()
    urgent = await send_message(
        http, auth, to=PARIS_NUMBER, text="Code 1234", send_at=send_at.isoformat()
    )
    assert datetime.fromisoformat(urgent["due_at"]) == send_at


async def test_a_held_message_is_sent_at_its_time_and_not_before(
    http: httpx.AsyncClient,
    auth: dict[str, str],
    dispatcher: Dispatcher,
    provider: FakeProvider,
    runtime: Runtime,
) -> None:
    held = await send_message(
        http, auth, to=PARIS_NUMBER, text="Later", send_at=_tonight().isoformat(), quiet_hours=True
    )
    assert await dispatcher.run_once() == 0
    assert provider.sent == []

    # The night passes: 08:00 in Paris comes.
    await make_due(runtime, held["id"])
    assert await dispatcher.run_once() == 1
    assert [job.text for job in provider.sent] == ["Later"]


async def test_cancelling_a_deferred_message_returns_its_credits(
    http: httpx.AsyncClient, runtime: Runtime, dispatcher: Dispatcher, provider: FakeProvider
) -> None:
    shop = await make_client(runtime, "deferring shop", quota=5)
    later = datetime.now(UTC) + timedelta(days=1)
    message = await send_message(
        http, shop.auth, to=PARIS_NUMBER, text="a" * 200, send_at=later.isoformat()
    )
    assert message["credits"] == 2
    account = (await http.get("/v1/account", headers=shop.auth)).json()
    assert account["credits_left"] == 3

    cancelled = await http.delete(f"/v1/messages/{message['id']}", headers=shop.auth)
    assert cancelled.json()["status"] == "cancelled"
    assert await balance(runtime, shop.id) == Decimal(5)
    assert await dispatcher.run_once() == 0
    assert provider.sent == []
