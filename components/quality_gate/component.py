from kfp import dsl
from kfp.dsl import HTML, Markdown, Metrics, Output

from deep_storage_kfp.components._image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def quality_gate(
    report: Output[HTML],
    summary: Output[Markdown],
    metrics: Output[Metrics],
    first_day: str,
    last_day: str,
    lake_uri: str = "",
    as_of: str = "",
    volume_k: float = 3.0,
):
    """Validates bronze and silver with Great Expectations; fails the run when a fail rule breaks.

    Reports are written first (also under {lake}/_quality/), so a failed run still shows why.
    Needs the DJANGO_DB_* (source row counts) and AWS_*/S3_BUCKET variables.

    Args:
        report: The gate's page: verdict first, every rule, the offending rows by value, charts.
        summary: Rules passed, failed and warned, per table and day.
        metrics: Rows checked, rules passed / failed / warned, rows quarantined.
        first_day: First UTC day to validate (YYYY-MM-DD).
        last_day: Last UTC day, inclusive.
        lake_uri: s3a://BUCKET[/prefix] or file:///path; empty means s3a://$S3_BUCKET.
        as_of: The run's scheduled time (RFC 3339) for freshness; empty means now.
        volume_k: Warn when a day's rows fall outside mean ± k·stdev of the previous 14 days.
    """
    from deep_storage import steps

    out = steps.quality(lake_uri, first_day, last_day, as_of, volume_k)
    with open(report.path, "w") as fh:
        fh.write(out.html)
    with open(summary.path, "w") as fh:
        fh.write(out.markdown)
    for name, value in out.metrics.items():
        metrics.log_metric(name, value)
    out.raise_if_failed()
