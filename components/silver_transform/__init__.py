from deep_storage_kfp.components.silver_transform.component import silver_transform

__all__ = ["silver_transform"]
