"""UTC days and their half-open windows. Every window in the project comes from here."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

from deep_storage.core.errors import InputError

UTC = dt.UTC
MAX_RANGE_DAYS = 3660


def parse_day(value: str, *, name: str = "date") -> dt.date:
    """`YYYY-MM-DD` -> date, or an InputError naming the value as the caller knows it (`name`:
    a CLI flag, a component parameter) and what was expected."""
    try:
        if len(value) != 10:
            raise ValueError
        return dt.date.fromisoformat(value)
    except (TypeError, ValueError):
        raise InputError(
            f"{name} {value!r} is not a calendar date: expected YYYY-MM-DD, e.g. 2025-12-28"
        ) from None


def parse_instant(value: str, name: str) -> dt.datetime | None:
    """An RFC 3339 / ISO-8601 time -> aware UTC datetime. Empty, or KFP's placeholder left
    unresolved (a one-off run has no schedule time), means None; anything else that is not a
    time is an InputError naming `name`."""
    value = (value or "").strip()
    if not value or "{{" in value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(
            f"{name} {value!r} is not a time: expected ISO-8601, e.g. 2025-06-02T01:00:00Z"
        ) from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)


@dataclass(frozen=True)
class DayRange:
    """Inclusive range of UTC days [first, last]."""

    first: dt.date
    last: dt.date

    def __post_init__(self) -> None:
        if self.last < self.first:
            raise InputError(
                f"the last day {self.last} is before the first day {self.first}: "
                "expected a last day on or after the first"
            )
        if (self.last - self.first).days >= MAX_RANGE_DAYS:
            raise InputError(
                f"range {self.first}..{self.last} spans more than {MAX_RANGE_DAYS} days: split it"
            )

    @classmethod
    def parse(
        cls, date: str, until: str | None = None, names: tuple[str, str] = ("date", "until")
    ) -> DayRange:
        """Both ends as the caller names them (`names`: CLI flags or component parameters)."""
        first = parse_day(date, name=names[0])
        last = parse_day(until, name=names[1]) if until else first
        if last < first:
            raise InputError(
                f"{names[1]} {last} is before {names[0]} {first}: "
                f"expected {names[1]} on or after {names[0]}"
            )
        return cls(first, last)

    def days(self) -> Iterator[dt.date]:
        day = self.first
        while day <= self.last:
            yield day
            day += dt.timedelta(days=1)

    def __len__(self) -> int:
        return (self.last - self.first).days + 1

    def __str__(self) -> str:
        return str(self.first) if self.first == self.last else f"{self.first}..{self.last}"


def window(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """The half-open UTC window [day 00:00Z, day+1 00:00Z) as aware datetimes."""
    start = dt.datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start, start + dt.timedelta(days=1)


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)


def from_unix_micros(micros: int | None) -> dt.datetime | None:
    """An aware UTC instant from Spark's `unix_micros` (a long crosses py4j exactly)."""
    return None if micros is None else _EPOCH + dt.timedelta(microseconds=micros)
