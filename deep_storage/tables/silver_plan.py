"""Which days a silver run rebuilds, and which it reads: decided from the days' commit facts
alone, with no rows read and no engine started.

For a run over [D, D2] with look-back L, the bronze days read are
  [D-L, D-1]   look-back: the early events of executions still open on D (a day never ingested
               is read as empty, and named);
  [D, D2]      the run's days: each must be committed, else the run stops before reading;
  [D2+1, D2+L] whatever is committed already, so re-running an old day never rolls an execution
               back to a state that later days have moved past.
Two facts can change the days:
- **resume**: when the writer lease was last held by a silver run that died, its days join
  ours (some of them may be committed and others not: re-running them gives the rows of a run
  that was never cut short);
- **skip**: when every run day's silver was built from exactly the bronze versions this run
  would read (silver's facts record them as `bronze_inputs`), there is nothing to re-project: an
  hourly run after a quiet hour commits nothing. A resumed run is never skipped.

`plan` reads the facts; `decide` and `resume` are the decision, plain functions of them.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from deep_storage import lake
from deep_storage.core.dates import DayRange
from deep_storage.core.errors import LakeStateError
from deep_storage.lake import BRONZE_EVENTS, SILVER_EXECUTIONS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Plan:
    days: DayRange  # the run's days, widened by a resumed run's
    bronze: dict[dt.date, lake.CommittedDay]  # committed bronze days to read
    unsealed: list[dt.date]  # bronze days read that may still change
    missing_lookback: list[dt.date]  # look-back days never ingested: read as empty
    silver: dict[dt.date, lake.CommittedDay]  # committed silver days of the whole read window
    bronze_inputs: dict[str, str]  # the bronze versions read: ISO date -> "v{Delta version}"
    resumed: str | None = None  # the days of a silver run that died holding the lease

    def unchanged(self) -> bool:
        """Every run day's silver was built from exactly these bronze versions."""
        return all(
            d in self.silver and self.silver[d].details.get("bronze_inputs") == self.bronze_inputs
            for d in self.days.days()
        )

    @property
    def skip(self) -> bool:
        """Nothing to re-project: bronze has not changed since the run that built these days,
        and no dead run's days are being finished."""
        return self.resumed is None and self.unchanged()

    @property
    def rows(self) -> int:
        """The bronze rows the run reads (what picks its engine)."""
        return sum(m.rows for m in self.bronze.values())


def read_window(days: DayRange, lookback_days: int) -> DayRange:
    """The bronze days a run over `days` reads: `lookback_days` before and after."""
    lookback = dt.timedelta(days=lookback_days)
    return DayRange(days.first - lookback, days.last + lookback)


def resume(days: DayRange, previous_step: str | None, previous_days: str | None):
    """(`days` widened to a dead silver run's days, those days as text or None). The lease's last
    holder is named by its step and its days ("D..D2"); only a silver run's days are taken, and
    days that do not parse are ignored (the lease is ours now either way)."""
    if previous_step != "silver" or not previous_days:
        return days, None
    try:
        theirs = DayRange.parse(*previous_days.split("..", 1))
    except Exception:
        return days, None
    log.warning("silver: also re-running %s, cut short by a run that died", theirs)
    return DayRange(min(days.first, theirs.first), max(days.last, theirs.last)), str(theirs)


def decide(
    days: DayRange,
    lookback_days: int,
    bronze: dict[dt.date, lake.CommittedDay],
    silver: dict[dt.date, lake.CommittedDay],
    resumed: str | None = None,
) -> Plan:
    """The plan from the committed facts of the read window: `bronze` and `silver` map each
    committed day of the window to its facts."""
    for day in days.days():
        if day not in bronze:
            raise LakeStateError(
                f"bronze day {day} is not committed: run `deep-storage bronze --date {day}`"
            )
    window = list(read_window(days, lookback_days).days())
    bronze = {d: bronze[d] for d in window if d in bronze}
    return Plan(
        days=days,
        bronze=bronze,
        unsealed=[d for d, m in sorted(bronze.items()) if not m.sealed],
        missing_lookback=[d for d in window if d < days.first and d not in bronze],
        silver={d: silver[d] for d in window if d in silver},
        bronze_inputs={d.isoformat(): f"v{bronze[d].version}" for d in sorted(bronze)},
        resumed=resumed,
    )


def plan(fs: lake.LakeFS, days: DayRange, lookback_days: int, previous=None) -> Plan:
    """Read the window's commit facts and decide. `previous`: the lease's last holder
    (writer_lock.Holder: its step and days), or None."""
    days, resumed = resume(
        days,
        getattr(previous, "step", None),
        getattr(previous, "days", None),
    )
    window = list(read_window(days, lookback_days).days())
    bronze = lake.committed(fs, BRONZE_EVENTS, window)
    silver = lake.committed(fs, SILVER_EXECUTIONS, window, with_files=False)
    return decide(days, lookback_days, bronze, silver, resumed)
