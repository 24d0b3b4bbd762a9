from deep_storage_kfp.components.quality_gate.component import quality_gate

__all__ = ["quality_gate"]
