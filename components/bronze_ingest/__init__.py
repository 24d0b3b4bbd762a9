from deep_storage_kfp.components.bronze_ingest.component import bronze_ingest

__all__ = ["bronze_ingest"]
