"""The one place the components' image reference is built: NAME:{package version}.

spark_image/ builds and pushes exactly this tag (`make spark-image-build-push`).
"""

from importlib.metadata import PackageNotFoundError, version

IMAGE_NAME = "ghcr.io/ldamasio/rbs-spark"

try:
    IMAGE_TAG = version("deep-storage")
except PackageNotFoundError:  # a source tree that was never installed
    IMAGE_TAG = "0.0.0"

IMAGE = f"{IMAGE_NAME}:{IMAGE_TAG}"
