from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Metrics, Output

from deep_storage_kfp.components._image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def bronze_ingest(
    metrics: Output[Metrics],
    lake_uri: str = "",
    run_date: str = "",
    until_date: str = "",
    scheduled_time: str = "",
    create_time: str = "",
    seal_margin_s: int = 300,
    max_days: int = 14,
) -> NamedTuple("BronzeDays", [("first_day", str), ("last_day", str)]):
    """Ingests stop_events into bronze/events/date=D/, one committed folder per UTC day.

    Also ingests every day missing or unsealed since the oldest ingested one (gaps included;
    on an empty lake, from the source's oldest event within 90 days), oldest first, at most
    max_days per run: a run repairs what earlier runs left and the next one continues.
    Needs the DJANGO_DB_* and AWS_*/S3_BUCKET variables (the two cluster secrets).

    Args:
        metrics: Days ingested, rows written, days still unsealed, days left over the cap,
            stuck writers at the source.
        lake_uri: s3a://BUCKET[/prefix] or file:///path; empty means s3a://$S3_BUCKET.
        run_date: Last UTC day to ingest (YYYY-MM-DD); empty means the scheduled time's date.
        until_date: Optional later last day, for a range.
        scheduled_time: KFP's schedule time (RFC 3339), used when run_date is empty.
        create_time: KFP's creation time, used when there is no schedule time either.
        seal_margin_s: Clock-skew margin, in seconds, before a day may seal.
        max_days: At most this many days per run; the next run continues.
    """
    from deep_storage import steps

    out = steps.bronze(
        lake_uri, run_date, until_date, scheduled_time, create_time, seal_margin_s, max_days
    )
    for name, value in out.metrics.items():
        metrics.log_metric(name, value)
    return (out.first_day, out.last_day)
