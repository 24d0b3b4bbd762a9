"""deep_storage: the library behind the `deep-storage` CLI and the KFP components.

It never imports kfp: data flows one way, CLI or component -> this library -> the lake.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("deep-storage")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

from deep_storage.reader import read, status  # the notebook entry points

__all__ = ["__version__", "read", "status"]
