"""Building stop_events rows for tests: explicit values, inserted with bound parameters."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import Decimal

from deep_storage.core.schemas import SOURCE_COLUMNS

COLUMNS = SOURCE_COLUMNS


def utc(text: str) -> dt.datetime:
    """'2025-06-01 23:59:59.999999' -> aware UTC datetime."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def event(occurred_at: dt.datetime | str, event_type: str = "STOP_TRIGGERED", **kw) -> dict:
    if isinstance(occurred_at, str):
        occurred_at = utc(occurred_at)
    row = {
        "event_id": str(uuid.uuid4()),
        "event_seq": None,
        "occurred_at": occurred_at,
        "operation_id": 101,
        "client_id": 7,
        "symbol": "BTCUSDC",
        "event_type": event_type,
        "trigger_price": Decimal("64000.12345678"),
        "stop_price": Decimal("64010.00000000"),
        "quantity": Decimal("0.00100000"),
        "side": "SELL",
        "execution_token": "101:64000.12345678:1748822399000",
        "payload_json": json.dumps({"trigger_type": "stop_loss", "entry_price": "65000.1"}),
        "request_payload_hash": None,
        "exchange_order_id": None,
        "fill_price": None,
        "slippage_pct": None,
        "source": "ws",
        "error_message": None,
        "retry_count": 0,
    }
    if event_type == "EXECUTED":  # as the app writes it: the fill comes with the event
        row.update(
            exchange_order_id="EX-" + row["event_id"][:8],
            fill_price=Decimal("64005.5"),
            slippage_pct=Decimal("0.0070"),
        )
    row.update(kw)
    return row


def insert(conn, rows: list[dict], table: str = "stop_events") -> None:
    columns = [*COLUMNS, *(k for k in rows[0] if k not in COLUMNS)] if rows else COLUMNS
    placeholders = ", ".join(["%s"] * len(columns))
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})"
    with conn.cursor() as cur:
        cur.executemany(sql, [tuple(r.get(c) for c in columns) for r in rows])
