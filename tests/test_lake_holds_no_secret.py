"""Nothing the lake holds names a secret, the database's host or its user: after the steps ran
with a planted user, password and host name, every object under the lake (Delta logs and
checkpoints, `_days`, the lease while held, commit metadata, report pages, results JSON,
quarantine, Parquet footers) is searched for them, byte for byte."""

from __future__ import annotations

import datetime as dt
import subprocess

import pytest
from psycopg import sql

from deep_storage.lake import writer_lock
from tests.events import event, insert
from tests.services import APP_DB, BUCKET, CLI

pytestmark = pytest.mark.integration

D = dt.date(2025, 6, 1)
USER = "planted_reader_q7"
PASSWORD = "Pl4nted!pw#q7-never-in-the-lake"
HOST = "localhost"  # resolves to the loopback server; the tests otherwise name 127.0.0.1


@pytest.fixture()
def planted_env(pg, service_env) -> dict:
    with pg.connect() as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (USER,)).fetchone()
        if not exists:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(USER), sql.Literal(PASSWORD)
                )
            )
            conn.execute(sql.SQL("GRANT pg_read_all_stats TO {}").format(sql.Identifier(USER)))
    with pg.connect(APP_DB) as conn:
        conn.execute(sql.SQL("GRANT SELECT ON stop_events TO {}").format(sql.Identifier(USER)))
    return {
        **service_env,
        "DJANGO_DB_HOST": HOST,
        "DJANGO_DB_USER": USER,
        "DJANGO_DB_PASSWORD": PASSWORD,
    }


def _objects(s3, lake: str) -> dict[str, bytes]:
    prefix = lake.split(f"s3a://{BUCKET}/", 1)[1] + "/"
    client = s3.client()
    out = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        for item in page.get("Contents", []):
            out[item["Key"]] = client.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read()
    return out


def test_nothing_the_lake_holds_names_a_secret_the_database_host_or_user(db, s3, lake, planted_env):
    insert(
        db,
        [
            event(f"{D} 09:00:00"),
            event(f"{D} 10:00:00", side="HOLD"),  # a warn rule: quarantine and its report
            event(f"{D} 11:00:00", event_type="PRICE_REFRESHED"),
        ],
    )
    env = {**planted_env}
    for args in (
        ("bronze", "--date", str(D)),
        ("silver", "--date", str(D)),
        ("validate", "--date", str(D)),
        ("retention", "--as-of", "2025-06-20T00:00:00Z"),
    ):
        done = subprocess.run(
            [CLI, *args, "--lake", lake], env=env, capture_output=True, text=True, timeout=600
        )
        assert done.returncode in (0, 6), done.stderr  # 6: a gate that fails is still a run
        for text in (done.stdout, done.stderr):
            assert PASSWORD not in text
    # The lease's body, while a run holds it.
    with writer_lock.hold(lake, "bronze", str(D), "planted-run"):
        held = _objects(s3, lake)
    everything = {**_objects(s3, lake), **held}
    assert any("_delta_log/" in k for k in everything), "the steps wrote nothing"
    assert any("_locks" in k for k in held), "no lease while held"
    assert any(k.endswith(".html") for k in everything), "no report page"
    secrets = {
        "the database password": PASSWORD,
        "the database user": USER,
        "the database host": HOST,
        "the object store's secret key": planted_env["AWS_SECRET_ACCESS_KEY"],
    }
    leaks = [
        f"{what} in {key}"
        for key, body in everything.items()
        for what, value in secrets.items()
        if value.encode() in body
    ]
    assert not leaks, leaks
