from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Markdown, Metrics, Output

from deep_storage_kfp.components._image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def training_set(
    metrics: Output[Metrics],
    report: Output[Markdown],
    name: str = "stop_outcome",
    version: str = "",
    from_day: str = "",
    to_day: str = "",
    test_from: str = "",
    lake_uri: str = "",
) -> NamedTuple("Released", [("version", str)]):
    """Releases a version of a training set (gold/training_sets/NAME): gold's rows of a range.

    A version is released once: a run that finds it released with the same rows reports it
    unchanged. Needs the AWS_*/S3_BUCKET variables (the object-storage secret).

    Args:
        metrics: What the release counted (rows per split, the checks' results).
        report: The version's record and the gold rules it was checked against.
        name: The training set, e.g. stop_outcome.
        version: The version to release, X.Y.Z (e.g. 1.0.0); empty means the next patch version
            when the rows moved since the newest one, else the newest (nothing changes).
        from_day: First UTC day of gold rows (YYYY-MM-DD); empty with to_day: the 28 days
            before gold's newest day.
        to_day: Last UTC day, inclusive.
        test_from: First UTC day of the test split; empty means the start of the range's last
            fifth.
        lake_uri: s3a://BUCKET[/prefix] or file:///path; empty means s3a://$S3_BUCKET.
    """
    from deep_storage import steps

    out = steps.training_set(lake_uri, name, version, from_day, to_day, test_from)
    with open(report.path, "w") as fh:
        fh.write(out.markdown)
    for key, value in out.metrics.items():
        metrics.log_metric(key, value)
    return (out.record["version"],)
