from kfp import dsl
from kfp.dsl import Metrics, Output

from deep_storage_kfp.components._image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def silver_transform(
    metrics: Output[Metrics],
    first_day: str,
    last_day: str,
    lake_uri: str = "",
    lookback_days: int = 7,
):
    """Rebuilds silver/stop_executions (one row per execution) for the days bronze changed.

    Needs the AWS_*/S3_BUCKET variables (the object-storage secret).

    Args:
        metrics: Executions re-projected (per status), partitions written, days committed.
        first_day: First UTC day whose executions are rebuilt (YYYY-MM-DD).
        last_day: Last UTC day, inclusive.
        lake_uri: s3a://BUCKET[/prefix] or file:///path; empty means s3a://$S3_BUCKET.
        lookback_days: How many days one execution may span.
    """
    from deep_storage import steps

    out = steps.silver(lake_uri, first_day, last_day, lookback_days)
    for name, value in out.metrics.items():
        metrics.log_metric(name, value)
