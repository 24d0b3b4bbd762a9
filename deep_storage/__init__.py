"""deep_storage: the library behind the `deep-storage` CLI and the KFP components.

It never imports kfp: data flows one way, CLI or component -> this library -> the lake.
"""

from deep_storage.core.version import __version__
from deep_storage.reader import read, status  # the notebook entry points

__all__ = ["__version__", "read", "status"]
