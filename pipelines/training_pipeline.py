"""The deep-storage-training pipeline: gold features -> a training set -> the baseline model.

One factory, two variants, like the hourly pipeline's: the local one (kfp.local) runs without
retries; otherwise the same graph and the same components. No run-time placeholder is used, so
both variants take the same parameters. Empty from_day / to_day are passed on as they are: the
library decides a training set's default window.
"""

from dataclasses import replace

from kfp import dsl

from deep_storage_kfp.components import (
    catalog_tables,
    gold_features,
    train_baseline,
    training_set,
)
from deep_storage_kfp.pipelines import platform

PIPELINE_NAME = "deep-storage-training"
DESCRIPTION = (
    "silver/stop_executions -> gold/stop_execution_features -> a released training set "
    "(gold/training_sets) -> a baseline model (logistic regression) with its ROC curve; the "
    "gold tables named in the Hive Metastore when one is configured"
)


def build(local: bool = False, image: str = ""):
    """The pipeline; `local` for kfp.local (no retries); with `image`, every task runs in that
    image instead of its component's own."""
    profile = replace(platform.LOCAL if local else platform.CLUSTER, image=image)

    @dsl.pipeline(name=PIPELINE_NAME, description=DESCRIPTION)
    def deep_storage_training(
        version: str = "",
        name: str = "stop_outcome",
        from_day: str = "",
        to_day: str = "",
        test_from: str = "",
        lake_uri: str = "",
        s3_secret: str = "contabo-s3-credentials",
    ):
        secrets = {"s3_secret": s3_secret, "profile": profile}
        # Gold catches up first: the days whose silver changed since it last ran.
        gold = gold_features(lake_uri=lake_uri)
        platform.set_up_task(gold, "gold features", "gold", secrets)
        released = training_set(
            name=name,
            version=version,
            from_day=from_day,
            to_day=to_day,
            test_from=test_from,
            lake_uri=lake_uri,
        ).after(gold)
        platform.set_up_task(released, "training set", "gold", secrets)
        # The version the release resolved (an empty `version`: the next one, or the newest
        # when the rows did not move).
        model = train_baseline(name=name, version=released.outputs["version"], lake_uri=lake_uri)
        platform.set_up_task(model, "baseline model", "baseline", secrets)
        # The gold tables by name (the features, the set's table), beside the baseline.
        named = catalog_tables(lake_uri=lake_uri).after(released)
        platform.set_up_task(named, "catalog", "catalog", secrets)

    return deep_storage_training


deep_storage_training_pipeline = build(local=False)
