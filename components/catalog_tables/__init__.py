from deep_storage_kfp.components.catalog_tables.component import catalog_tables

__all__ = ["catalog_tables"]
