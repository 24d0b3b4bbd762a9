from kfp import dsl
from kfp.dsl import Metrics, Output

from deep_storage_kfp.components._image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def retention(
    metrics: Output[Metrics],
    lake_uri: str = "",
    as_of: str = "",
    dry_run: bool = False,
):
    """Removes the days past their retention (bronze 90 days, silver 365), then vacuums the lake.

    A day D goes once D < as_of - N days; the day as_of - N stays. Each table and _days is then
    vacuumed with Delta's 7-day window, so the version before a removal stays readable (time
    travel) for a week. Holds the writer lease. Needs the AWS_*/S3_BUCKET variables (the
    object-storage secret).

    Args:
        metrics: Days removed and files vacuumed, per table.
        lake_uri: s3a://BUCKET[/prefix] or file:///path; empty means s3a://$S3_BUCKET.
        as_of: The time (RFC 3339) or day (YYYY-MM-DD) the windows end at; empty means now. The
            pipeline passes the last day bronze ingested: a scheduled run's own day, and a
            backfill's last day rather than today.
        dry_run: Only report what would be removed and vacuumed; change nothing.
    """
    from deep_storage import steps

    out = steps.retention(lake_uri, as_of, dry_run)
    for name, value in out.metrics.items():
        metrics.log_metric(name, value)
