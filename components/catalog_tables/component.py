from kfp import dsl
from kfp.dsl import Metrics, Output

from deep_storage_kfp.components._image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def catalog_tables(
    metrics: Output[Metrics],
    lake_uri: str = "",
    database: str = "deep_storage",
):
    """Names the lake's tables in the Hive Metastore, for Spark SQL and Trino.

    Each Delta table of the lake becomes an external table at its location in `database`
    (deep_storage.bronze_events, deep_storage.silver_stop_executions, and the gold tables the
    lake holds); a name resolves to the table's latest version. The metastore is
    HIVE_METASTORE_URI, from the optional ConfigMap deep-storage-settings: without it the step
    says it skipped and passes. Registering again changes nothing; a name taken by a table at
    another location fails the step and drops nothing. Needs the AWS_*/S3_BUCKET variables (the
    object-storage secret).

    Args:
        metrics: Tables in the lake, how many were newly registered, and whether it skipped.
        lake_uri: s3a://BUCKET[/prefix] or file:///path; empty means s3a://$S3_BUCKET.
        database: The metastore database the tables are named in.
    """
    from deep_storage import steps

    out = steps.catalog(lake_uri, "", database)
    result = out.result
    if result.skipped:
        print(f"catalog: skipped: {result.skipped}")
    for table in result.tables:
        print(f"{table.name}: {table.outcome} at {table.location}")
    for name, value in out.metrics.items():
        metrics.log_metric(name, value)
