"""The installed package's version: the image tag, the gate's fingerprint, `--version`."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("deep-storage")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
