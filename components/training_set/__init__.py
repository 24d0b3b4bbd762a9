from deep_storage_kfp.components.training_set.component import training_set

__all__ = ["training_set"]
