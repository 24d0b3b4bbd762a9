"""The deep-storage pipeline: bronze -> silver -> quality gate -> retention -> catalog.
One factory, two variants. The cluster variant reads the run's date from KFP's schedule-time
placeholder (falling back to the creation time for one-off runs; an explicit run_date wins).
kfp.local cannot resolve those placeholders, so the local variant takes the date explicitly and
runs without retries; everything else is the same graph and the same components.
"""

from dataclasses import replace

from kfp import dsl

from deep_storage_kfp.components import (
    bronze_ingest,
    catalog_tables,
    quality_gate,
    retention,
    silver_transform,
)
from deep_storage_kfp.pipelines import platform

PIPELINE_NAME = "deep-storage"
DESCRIPTION = (
    "stop_events (PostgreSQL) -> bronze/events -> silver/stop_executions -> quality gate -> "
    "retention -> the tables named in the Hive Metastore (when one is configured), on "
    "S3-compatible object storage"
)


def build(
    local: bool = False,
    executors: int = 0,
    s3_secret_name: str = "contabo-s3-credentials",
    image: str = "",
):
    """The pipeline; with `executors`, silver and the gate run Spark with that many executor
    pods on Kubernetes (a backfill's variant: `deep-storage kfp backfill --executors N`), whose
    secrets are the named ones (the executors' env is fixed when this variant compiles); with
    `image`, every task runs in that image instead of its component's own."""
    profile = replace(platform.LOCAL if local else platform.CLUSTER, image=image)
    scheduled = "" if local else dsl.PIPELINE_JOB_SCHEDULE_TIME_UTC_PLACEHOLDER
    created = "" if local else dsl.PIPELINE_JOB_CREATE_TIME_UTC_PLACEHOLDER
    spark = {"executors": executors, "s3_secret_name": s3_secret_name}

    @dsl.pipeline(name=PIPELINE_NAME, description=DESCRIPTION)
    def deep_storage(
        run_date: str = "",
        until_date: str = "",
        lake_uri: str = "",
        lookback_days: int = 7,
        max_days: int = 14,
        db_secret: str = "django-db-credentials",
        s3_secret: str = "contabo-s3-credentials",
    ):
        secrets = {"db_secret": db_secret, "s3_secret": s3_secret, "profile": profile}
        bronze = bronze_ingest(
            lake_uri=lake_uri,
            run_date=run_date,
            until_date=until_date,
            scheduled_time=scheduled,
            create_time=created,
            max_days=max_days,
        )
        platform.set_up_task(bronze, "bronze ingest", "bronze", secrets)
        days = {"first_day": bronze.outputs["first_day"], "last_day": bronze.outputs["last_day"]}
        silver = silver_transform(lake_uri=lake_uri, **days, lookback_days=lookback_days)
        platform.set_up_task(silver, "silver transform", "silver", secrets, **spark)
        gate = quality_gate(lake_uri=lake_uri, **days, as_of=scheduled).after(silver)
        platform.set_up_task(gate, "quality gate", "quality", secrets, **spark)
        # As of the last day bronze ingested: a scheduled run's own day, and for a backfill of
        # past days its last one, so the run does not remove what it just ingested. After the
        # gate: a run whose gate failed removes nothing; the next one catches up.
        kept = retention(lake_uri=lake_uri, as_of=bronze.outputs["last_day"]).after(gate)
        platform.set_up_task(kept, "retention", "retention", secrets)
        # Last: the tables by name for Spark SQL and Trino. Names point at locations, not
        # versions, so this only adds a table the lake did not have; with no metastore
        # configured (HIVE_METASTORE_URI) it says it skipped.
        named = catalog_tables(lake_uri=lake_uri).after(kept)
        platform.set_up_task(named, "catalog", "catalog", secrets)

    return deep_storage


deep_storage_pipeline = build(local=False)
