"""deep_storage.core.dates: a day as its caller typed it, its UTC window, and ranges of days."""

from __future__ import annotations

import datetime as dt

import pytest

from deep_storage.core.dates import DayRange, parse_day, window
from deep_storage.core.errors import InputError

pytestmark = pytest.mark.unit

UTC = dt.UTC


@pytest.mark.parametrize("text", ["2025-02-29", "2025-13-01", "20250601", "2025-6-1", "", "x"])
def test_bad_dates_name_the_value_and_the_format(text):
    with pytest.raises(InputError, match="expected YYYY-MM-DD"):
        parse_day(text)


def test_window_is_half_open_midnight_to_midnight_utc():
    assert window(dt.date(2025, 6, 1)) == (
        dt.datetime(2025, 6, 1, tzinfo=UTC),
        dt.datetime(2025, 6, 2, tzinfo=UTC),
    )


def test_range_is_inclusive_and_refuses_reversed_bounds():
    assert [str(d) for d in DayRange.parse("2025-06-30", "2025-07-01").days()] == [
        "2025-06-30",
        "2025-07-01",
    ]
    with pytest.raises(InputError, match="--until 2025-06-01 is before --date 2025-06-02"):
        DayRange.parse("2025-06-02", "2025-06-01", names=("--date", "--until"))
    with pytest.raises(InputError, match="last_day 2025-06-01 is before first_day"):
        DayRange.parse("2025-06-02", "2025-06-01", names=("first_day", "last_day"))
