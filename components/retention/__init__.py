from deep_storage_kfp.components.retention.component import retention

__all__ = ["retention"]
