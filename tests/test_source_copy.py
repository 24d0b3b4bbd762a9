"""deep_storage.io.source_copy without a database: the COPY query of a day and its Arrow schema."""

from __future__ import annotations

import datetime as dt

import pytest

from deep_storage.core.dates import window
from deep_storage.io import source_copy

pytestmark = pytest.mark.unit


def test_extra_source_columns_follow_the_contract_as_quoted_text():
    start, end = window(dt.date(2025, 6, 1))
    sql = source_copy.query("stop_events", start, end, ("venue", 'odd"name'))
    assert sql.index("retry_count") < sql.index('"venue"::text AS "venue"')
    assert '"odd""name"::text' in sql
    schema = source_copy.arrow_schema(("venue",))
    assert schema.names[-1] == "venue" and str(schema.field("venue").type) == "string"
