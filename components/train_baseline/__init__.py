from deep_storage_kfp.components.train_baseline.component import train_baseline

__all__ = ["train_baseline"]
