"""KFP v2 interfaces of deep-storage: thin typed components on the baked Spark image."""

from deep_storage_kfp.components.bronze_ingest import bronze_ingest
from deep_storage_kfp.components.catalog_tables import catalog_tables
from deep_storage_kfp.components.gold_features import gold_features
from deep_storage_kfp.components.quality_gate import quality_gate
from deep_storage_kfp.components.retention import retention
from deep_storage_kfp.components.silver_transform import silver_transform
from deep_storage_kfp.components.train_baseline import train_baseline
from deep_storage_kfp.components.training_set import training_set

__all__ = [
    "bronze_ingest",
    "catalog_tables",
    "gold_features",
    "quality_gate",
    "retention",
    "silver_transform",
    "train_baseline",
    "training_set",
]
