"""deep_storage: the library behind the `deep-storage` CLI and the KFP components.

It never imports kfp: data flows one way, CLI or component -> this library -> the lake.
The notebook entry points, `deep_storage.read`, `deep_storage.status` and
`deep_storage.training_set`, load on first use, so
importing one layer (`deep_storage.core.config`, say) does not pull in the rest of the library.
"""

from typing import TYPE_CHECKING, Any

from deep_storage.core.version import __version__

if TYPE_CHECKING:
    from deep_storage.lake_status import status
    from deep_storage.reader import read
    from deep_storage.training import training_set

__all__ = ["__version__", "read", "status", "training_set"]


def __getattr__(name: str) -> Any:
    if name == "read":
        from deep_storage import reader

        return reader.read
    if name == "status":
        from deep_storage import lake_status

        return lake_status.status
    if name == "training_set":
        from deep_storage import training

        return training.training_set
    raise AttributeError(f"module 'deep_storage' has no attribute {name!r}")
