"""KFP v2 interfaces of deep-storage: thin typed components on the baked Spark image."""

from components.bronze_ingest import bronze_ingest
from components.quality_gate import quality_gate
from components.silver_transform import silver_transform

__all__ = ["bronze_ingest", "quality_gate", "silver_transform"]
