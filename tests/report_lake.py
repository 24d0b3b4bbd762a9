"""A lake whose gate report has something to show: a fortnight of synthetic bronze and silver
days, and a last day with one broken rule of each level (a duplicated event_id: fail; an event
type the projection does not know: warn). Used by the browser test and `make report-screenshot`."""

from __future__ import annotations

import datetime as dt

from deep_storage.core.dates import DayRange
from deep_storage.tables import silver
from demo import synthetic
from tests.events import COLUMNS
from tests.lake_fixtures import write_bronze_day

DAY = dt.date(2025, 6, 14)
AS_OF = dt.datetime.combine(DAY + dt.timedelta(days=1), dt.time(0, 30), dt.UTC)
# The source's newest event at AS_OF: the lake is 20-odd minutes behind it.
SOURCE_NEWEST = dt.datetime.combine(DAY + dt.timedelta(days=1), dt.time(0, 25), dt.UTC)
UNKNOWN_TYPE = "AUDIT_NOTE"
DUPLICATED_ID = "0e5f5a3c-0000-4000-8000-00000000dup1"


def build(spark, lake: str, days: int = 14, per_day: int = 400) -> dt.date:
    """Write `days` days up to DAY into `lake` (bronze as the crafted writer, silver by its own
    step); return DAY (the broken one). Validate it with as_of=AS_OF."""
    first = DAY - dt.timedelta(days=days - 1)
    for i in range(days):
        day = first + dt.timedelta(days=i)
        rows = [
            dict(zip(COLUMNS, r, strict=True))
            for r in synthetic.generate(day, per_day + 17 * (i % 4), seed=3, clients=8)
        ]
        end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), dt.UTC)
        # Spilled rows (after midnight) would belong to the next day's bronze window.
        rows = [r for r in rows if r["occurred_at"] < end]
        if day == DAY:
            rows[5]["event_type"] = UNKNOWN_TYPE
            rows[7]["event_id"] = DUPLICATED_ID
            rows[8]["event_id"] = DUPLICATED_ID
        newest = max(r["occurred_at"] for r in rows if r["occurred_at"] < end)
        details = {"newest_event_at": newest.isoformat()}
        if day == DAY:
            details["unsealed_reason"] = "the day's window may still receive late commits"
        # The last day is not sealed yet: the source-count check waits for it.
        write_bronze_day(spark, lake, day, rows, sealed=day != DAY, details=details)
    silver.run(DayRange(first, DAY), lake, spark=spark)
    return DAY
