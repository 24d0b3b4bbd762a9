"""The PostgreSQL side: connecting with clear errors, and deciding whether a day is sealed.

Reading the rows themselves is bronze's engines' job (source_copy.py, or Spark JDBC);
this module holds the small metadata queries, with every value bound as a typed parameter.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import psycopg

from deep_storage.core import defaults
from deep_storage.core.config import SourceConfig, redact
from deep_storage.core.dates import window
from deep_storage.core.errors import SourceError
from deep_storage.core.schemas import BRONZE_EVENTS_SCHEMA, SOURCE_COLUMNS

REQUIRED_COLUMNS = SOURCE_COLUMNS


def connect(source: SourceConfig) -> psycopg.Connection:
    """An autocommit connection in UTC, or a SourceError that says what to fix."""
    try:
        # Keyword arguments, not a DSN string: a password with ! $ ' " @ : / is passed as is.
        conn = psycopg.connect(
            host=source.host,
            port=source.port,
            dbname=source.dbname,
            user=source.user,
            password=source.password,
            connect_timeout=source.connect_timeout_s,
            autocommit=True,
            application_name="deep-storage",
            options="-c TimeZone=UTC",
        )
    except psycopg.OperationalError as exc:
        detail = redact(
            str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        )
        if "password authentication failed" in str(exc) or "no password supplied" in str(exc):
            raise SourceError(
                f"{source.where}: login refused (password authentication failed): "
                "check DJANGO_DB_USER and DJANGO_DB_PASSWORD in the secret"
            ) from None
        if "does not exist" in str(exc):
            raise SourceError(f"{source.where}: {detail}: check DJANGO_DB_NAME") from None
        raise SourceError(
            f"cannot reach {source.where}: {detail}: check DJANGO_DB_HOST/DJANGO_DB_PORT "
            "and that the network policy lets this pod reach the database"
        ) from None
    return conn


@dataclass(frozen=True)
class SourceColumn:
    """A column of the source table, as information_schema describes it."""

    name: str
    data_type: str  # e.g. "bigint", "character varying", "numeric"
    udt: str  # e.g. "int8", "varchar", "numeric"
    precision: int | None = None  # numeric only
    scale: int | None = None

    def describe(self) -> str:
        if self.udt == "numeric":
            return (
                "numeric" if self.precision is None else f"numeric({self.precision},{self.scale})"
            )
        return self.data_type


def columns(conn: psycopg.Connection, source: SourceConfig) -> list[SourceColumn]:
    """The table's columns in table order (empty when the table does not exist)."""
    rows = conn.execute(
        "SELECT column_name, data_type, udt_name, numeric_precision, numeric_scale "
        "FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND table_name = %s ORDER BY ordinal_position",
        (source.table,),
    ).fetchall()
    return [
        SourceColumn(name, data_type, udt, precision if udt == "numeric" else None, scale)
        for name, data_type, udt, precision, scale in rows
    ]


_STRINGS = ("varchar", "text", "bpchar")
_FITS = {
    "event_id": ("uuid", *_STRINGS),
    "payload_json": ("jsonb", "json", "text"),
    "string": _STRINGS,
    "bigint": ("int2", "int4", "int8"),
    "int": ("int2", "int4"),
    "timestamp": ("timestamptz",),
}


def _fits(column: SourceColumn, contract_field) -> tuple[bool, str]:
    """Does the source column fit the contract's type? (fits, what the contract accepts)."""
    kind = contract_field.dataType.simpleString()
    if kind.startswith("decimal"):
        p, s = contract_field.dataType.precision, contract_field.dataType.scale
        ok = (
            column.udt == "numeric"
            and column.precision is not None
            and column.scale <= s
            and column.precision - column.scale <= p - s
        )
        return ok, f"numeric({p},{s}) or narrower"
    accepted = _FITS.get(contract_field.name) or _FITS[kind]
    return column.udt in accepted, " or ".join(accepted)


def check_table(conn: psycopg.Connection, source: SourceConfig) -> list[SourceColumn]:
    """Check the table against the contract; return its columns beyond the contract (in table
    order): they flow into bronze after the contract's. A missing contract column, or one whose
    type no longer fits the contract's, stops the ingest before anything is written."""
    found = columns(conn, source)
    if not found:
        raise SourceError(f"{source.where}: table {source.table} not found: are migrations run?")
    by_name = {c.name: c for c in found}
    missing = [c for c in REQUIRED_COLUMNS if c not in by_name]
    if missing:
        raise SourceError(
            f"{source.where}: table {source.table} lacks columns {', '.join(missing)}: bronze "
            "stops and writes nothing; restore them, or change the contract (docs/lake-contract.md)"
        )
    for wanted in BRONZE_EVENTS_SCHEMA.fields:
        ok, accepted = _fits(by_name[wanted.name], wanted)
        if not ok:
            raise SourceError(
                f"{source.where}: column {source.table}.{wanted.name} is "
                f"{by_name[wanted.name].describe()}: the contract's "
                f"{wanted.dataType.simpleString()} "
                f"takes {accepted}; bronze stops and writes nothing (docs/lake-contract.md)"
            )
    return [c for c in found if c.name not in REQUIRED_COLUMNS]


def server_now(conn: psycopg.Connection) -> dt.datetime:
    return conn.execute("SELECT now()").fetchone()[0].astimezone(dt.UTC)


def oldest_event_day(
    conn: psycopg.Connection, source: SourceConfig, since: dt.date | None = None
) -> dt.date | None:
    """UTC day of the oldest event (on or after `since`, when given)."""
    from psycopg import sql

    start = window(since)[0] if since else dt.datetime(1, 1, 1, tzinfo=dt.UTC)
    row = conn.execute(
        sql.SQL("SELECT min(occurred_at) FROM {} WHERE occurred_at >= %s").format(
            sql.Identifier(source.table)
        ),
        (start,),
    ).fetchone()
    return row[0].astimezone(dt.UTC).date() if row and row[0] else None


def window_summary(
    conn: psycopg.Connection, source: SourceConfig, day: dt.date
) -> tuple[int, dt.datetime | None]:
    """(rows, newest occurred_at) of the day's window at the source: an index range scan.
    The log is append-only, so an unchanged count means unchanged rows."""
    from psycopg import sql

    start, end = window(day)
    query = sql.SQL(
        "SELECT count(*), max(occurred_at) FROM {} WHERE occurred_at >= %s AND occurred_at < %s"
    ).format(sql.Identifier(source.table))
    rows, newest = conn.execute(query, (start, end)).fetchone()
    return rows, newest.astimezone(dt.UTC) if newest else None


def slice_summary(
    conn: psycopg.Connection, source: SourceConfig, bounds: list[tuple[dt.datetime, dt.datetime]]
) -> list[tuple[int, dt.datetime | None]]:
    """(rows, newest occurred_at) of each half-open slice `bounds` (contiguous, in order) at the
    source, in one index range scan. width_bucket over the slices' lower bounds compares
    timestamps exactly, as the slices' own reads do (no float epoch arithmetic)."""
    from psycopg import sql

    lowers = [lo for lo, _ in bounds]
    query = sql.SQL(
        "SELECT width_bucket(occurred_at, %s::timestamptz[]), count(*), max(occurred_at) FROM {} "
        "WHERE occurred_at >= %s AND occurred_at < %s GROUP BY 1"
    ).format(sql.Identifier(source.table))
    found = {
        bucket - 1: (rows, newest.astimezone(dt.UTC) if newest else None)
        for bucket, rows, newest in conn.execute(query, (lowers, bounds[0][0], bounds[-1][1]))
    }
    return [found.get(i, (0, None)) for i in range(len(bounds))]


def window_newest(
    conn: psycopg.Connection, source: SourceConfig, day: dt.date
) -> dt.datetime | None:
    """occurred_at of the newest event in the day's window at the source, None when the window
    is empty: PostgreSQL answers max() over a range of the occurred_at index with one backward
    index probe, so this costs the same on a quiet day and a 5M-row one."""
    from psycopg import sql

    start, end = window(day)
    query = sql.SQL(
        "SELECT max(occurred_at) FROM {} WHERE occurred_at >= %s AND occurred_at < %s"
    ).format(sql.Identifier(source.table))
    row = conn.execute(query, (start, end)).fetchone()
    return row[0].astimezone(dt.UTC) if row and row[0] else None


def newest_event(conn: psycopg.Connection, source: SourceConfig) -> dt.datetime | None:
    """occurred_at of the source's newest event (an index scan on occurred_at)."""
    from psycopg import sql

    row = conn.execute(
        sql.SQL("SELECT max(occurred_at) FROM {}").format(sql.Identifier(source.table))
    ).fetchone()
    return row[0].astimezone(dt.UTC) if row and row[0] else None


@dataclass(frozen=True)
class Writer:
    """An open (or prepared) transaction holding a write lock on the source table."""

    pid: int | None
    xact_start: dt.datetime | None
    prepared: bool
    gid: str | None = None

    def describe(self, now: dt.datetime) -> str:
        who = f"prepared transaction {self.gid!r}" if self.prepared else f"pid {self.pid}"
        if self.xact_start is None:
            return f"{who} (start time not visible)"
        age = int((now - self.xact_start).total_seconds())
        since = "prepared at" if self.prepared else "open since"
        return (
            f"{who} {since} {self.xact_start.isoformat()} ({age // 3600}h{age % 3600 // 60:02d}m)"
        )

    def stuck(self, now: dt.datetime) -> bool:
        """Open for over an hour: an orphaned prepared transaction or an idle session that
        keeps days unsealed until a person ends it."""
        return self.xact_start is not None and now - self.xact_start > defaults.STUCK_WRITER_AFTER


@dataclass(frozen=True)
class SealCheck:
    sealed: bool
    checked_at: dt.datetime
    reason: str | None
    snapshot_xmin: str | None = None
    writers: tuple[Writer, ...] = field(default_factory=tuple)

    @property
    def stuck(self) -> list[str]:
        return [w.describe(self.checked_at) for w in self.writers if w.stuck(self.checked_at)]


def decide_seal(
    day: dt.date, now: dt.datetime, writers: list[Writer], margin: dt.timedelta
) -> tuple[bool, str | None]:
    """Can a row still appear in the window of `day`?

    The app stamps occurred_at with its clock at INSERT, inside the writing transaction, so a row
    of the window can still commit only if (a) the app's clock may not have passed the window's end
    yet (now < end + margin, the margin covering skew between app and database clocks), or (b) a
    transaction that began before end + margin is still open or prepared and holds a write lock on
    the table. A writer whose start time we cannot see counts as such a transaction.
    """
    _, end = window(day)
    horizon = end + margin
    if now < horizon:
        return (
            False,
            f"the window closes for late commits at {horizon.isoformat()} (now {now.isoformat()})",
        )
    for w in writers:
        # A prepared transaction's start is not visible (only when it was prepared): it counts.
        if w.prepared or w.xact_start is None or w.xact_start < horizon:
            return False, (
                f"{w.describe(now)} holds a write lock on the source table "
                "and may still commit rows of this day"
            )
    return True, None


# A prepared transaction's locks have no pid; its transactionid lock (same virtualtransaction)
# leads to pg_prepared_xacts, which gives its gid and when it was prepared.
_WRITERS_SQL = """
SELECT l.pid, coalesce(a.xact_start, p.prepared), l.pid IS NULL AS prepared, p.gid
FROM pg_locks l
LEFT JOIN pg_stat_activity a ON a.pid = l.pid
LEFT JOIN pg_locks t
  ON l.pid IS NULL AND t.pid IS NULL AND t.locktype = 'transactionid'
  AND t.virtualtransaction = l.virtualtransaction
LEFT JOIN pg_prepared_xacts p ON p.transaction = t.transactionid
WHERE l.locktype = 'relation'
  AND l.relation = to_regclass(%s)
  AND l.mode IN ('RowExclusiveLock', 'ShareRowExclusiveLock', 'ExclusiveLock',
                 'AccessExclusiveLock')
  AND l.pid IS DISTINCT FROM pg_backend_pid()
"""


def seal_check(
    conn: psycopg.Connection, source: SourceConfig, day: dt.date, margin: dt.timedelta
) -> SealCheck:
    """Look at the source's open transactions now; call it before reading the day's rows, so
    every row the check allowed for is already committed when the read starts."""
    now, xmin = conn.execute(
        "SELECT now(), pg_snapshot_xmin(pg_current_snapshot())::text"
    ).fetchone()
    now = now.astimezone(dt.UTC)
    writers = [
        Writer(pid, start.astimezone(dt.UTC) if start else None, prepared, gid)
        for pid, start, prepared, gid in conn.execute(_WRITERS_SQL, (source.table,)).fetchall()
    ]
    sealed, reason = decide_seal(day, now, writers, margin)
    return SealCheck(sealed, now, reason, xmin, tuple(writers))
