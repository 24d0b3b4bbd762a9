"""The PostgreSQL side: connecting with clear errors, and deciding whether a day is sealed.

Reading the rows themselves is Spark's job (bronze.extract); this module holds the small
metadata queries, with every value bound as a typed parameter.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import psycopg

from deep_storage.config import SourceConfig, redact
from deep_storage.dates import window
from deep_storage.errors import SourceError
from deep_storage.schemas import SOURCE_COLUMNS

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


def check_table(conn: psycopg.Connection, source: SourceConfig) -> None:
    rows = conn.execute(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND table_name = %s",
        (source.table,),
    ).fetchall()
    if not rows:
        raise SourceError(f"{source.where}: table {source.table} not found: are migrations run?")
    missing = sorted(set(REQUIRED_COLUMNS) - {r[0] for r in rows})
    if missing:
        raise SourceError(
            f"{source.where}: table {source.table} lacks columns {', '.join(missing)}: "
            "expected the stop_events schema of source-schema.md"
        )


def server_now(conn: psycopg.Connection) -> dt.datetime:
    return conn.execute("SELECT now()").fetchone()[0].astimezone(dt.UTC)


def oldest_event_day(conn: psycopg.Connection, source: SourceConfig) -> dt.date | None:
    from psycopg import sql

    row = conn.execute(
        sql.SQL("SELECT min(occurred_at) FROM {}").format(sql.Identifier(source.table))
    ).fetchone()
    return row[0].astimezone(dt.UTC).date() if row and row[0] else None


@dataclass(frozen=True)
class Writer:
    """An open (or prepared) transaction holding a write lock on the source table."""

    pid: int | None
    xact_start: dt.datetime | None
    prepared: bool


@dataclass(frozen=True)
class SealCheck:
    sealed: bool
    checked_at: dt.datetime
    reason: str | None
    snapshot_xmin: str | None = None
    writers: tuple[Writer, ...] = field(default_factory=tuple)


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
        if w.prepared:
            return False, "a prepared transaction holds a write lock on the source table"
        if w.xact_start is None:
            return False, f"transaction of pid {w.pid} (start time not visible) holds a write lock"
        if w.xact_start < horizon:
            return False, (
                f"transaction of pid {w.pid} open since {w.xact_start.isoformat()} "
                "holds a write lock and may still commit rows of this day"
            )
    return True, None


_WRITERS_SQL = """
SELECT l.pid, a.xact_start, l.pid IS NULL AS prepared
FROM pg_locks l
LEFT JOIN pg_stat_activity a ON a.pid = l.pid
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
        Writer(pid, start.astimezone(dt.UTC) if start else None, prepared)
        for pid, start, prepared in conn.execute(_WRITERS_SQL, (source.table,)).fetchall()
    ]
    sealed, reason = decide_seal(day, now, writers, margin)
    return SealCheck(sealed, now, reason, xmin, tuple(writers))
