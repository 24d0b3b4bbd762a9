"""KFP v2 interfaces of deep-storage: thin typed components on the baked Spark image."""

from deep_storage_kfp.components.bronze_ingest import bronze_ingest
from deep_storage_kfp.components.quality_gate import quality_gate
from deep_storage_kfp.components.retention import retention
from deep_storage_kfp.components.silver_transform import silver_transform

__all__ = ["bronze_ingest", "quality_gate", "retention", "silver_transform"]
