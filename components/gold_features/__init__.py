from deep_storage_kfp.components.gold_features.component import gold_features

__all__ = ["gold_features"]
