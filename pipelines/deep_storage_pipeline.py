"""The deep-storage pipeline: bronze -> silver -> quality gate -> retention.
One factory, two variants. The cluster variant reads the run's date from KFP's schedule-time
placeholder (falling back to the creation time for one-off runs; an explicit run_date wins).
kfp.local cannot resolve those placeholders, so the local variant takes the date explicitly and
runs without retries; everything else is the same graph and the same components.
"""

from kfp import dsl

from deep_storage_kfp.components import bronze_ingest, quality_gate, retention, silver_transform
from deep_storage_kfp.pipelines import platform

PIPELINE_NAME = "deep-storage"
DESCRIPTION = (
    "stop_events (PostgreSQL) -> bronze/events -> silver/stop_executions -> quality gate -> "
    "retention, on S3-compatible object storage"
)


def build(
    local: bool = False,
    executors: int = 0,
    s3_secret_name: str = "contabo-s3-credentials",
):
    """The pipeline; with `executors`, silver and the gate run Spark with that many executor
    pods on Kubernetes (a backfill's variant: `deep-storage backfill --executors N`), whose
    secrets are the named ones (the executors' env is fixed when this variant compiles)."""
    named = {"s3_secret": s3_secret_name}
    profile = platform.LOCAL if local else platform.CLUSTER
    scheduled = "" if local else dsl.PIPELINE_JOB_SCHEDULE_TIME_UTC_PLACEHOLDER
    created = "" if local else dsl.PIPELINE_JOB_CREATE_TIME_UTC_PLACEHOLDER

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
        platform.apply_platform_profile(
            bronze.set_display_name("bronze ingest"), "bronze", **secrets
        )
        silver = silver_transform(
            lake_uri=lake_uri,
            first_day=bronze.outputs["first_day"],
            last_day=bronze.outputs["last_day"],
            lookback_days=lookback_days,
        )
        platform.apply_platform_profile(
            silver.set_display_name("silver transform"), "silver", **secrets
        )
        if executors:
            platform.use_executors(silver, "silver", executors, **named)
        gate = quality_gate(
            lake_uri=lake_uri,
            first_day=bronze.outputs["first_day"],
            last_day=bronze.outputs["last_day"],
            as_of=scheduled,
        )
        gate.after(silver)
        platform.apply_platform_profile(gate.set_display_name("quality gate"), "quality", **secrets)
        if executors:
            platform.use_executors(gate, "quality", executors, **named)
        # As of the last day bronze ingested: a scheduled run's own day, and for a backfill of
        # past days its last one, so the run does not remove what it just ingested. After the
        # gate: a run whose gate failed removes nothing; the next one catches up.
        kept = retention(lake_uri=lake_uri, as_of=bronze.outputs["last_day"])
        kept.after(gate)
        platform.apply_platform_profile(kept.set_display_name("retention"), "retention", **secrets)

    return deep_storage


deep_storage_pipeline = build(local=False)
