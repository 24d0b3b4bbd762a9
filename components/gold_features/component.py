from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Metrics, Output

from deep_storage_kfp.components._image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def gold_features(
    metrics: Output[Metrics],
    lake_uri: str = "",
    first_day: str = "",
    last_day: str = "",
) -> NamedTuple("GoldDays", [("first_day", str), ("last_day", str)]):
    """Rebuilds gold/stop_execution_features (per silver execution: features, labels) by day.

    With no first_day, rebuilds the days whose silver changed since gold last ran. Needs the
    AWS_*/S3_BUCKET variables (the object-storage secret).

    Args:
        metrics: Rows and days written, and whether the run was skipped.
        lake_uri: s3a://BUCKET[/prefix] or file:///path; empty means s3a://$S3_BUCKET.
        first_day: First UTC day to rebuild (YYYY-MM-DD); empty means the days silver changed.
        last_day: Last UTC day, inclusive.
    """
    from deep_storage import steps

    out = steps.gold(lake_uri, first_day, last_day)
    for name, value in out.metrics.items():
        metrics.log_metric(name, value)
    return (out.first_day, out.last_day)
