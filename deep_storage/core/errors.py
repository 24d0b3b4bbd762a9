"""Exceptions that `deep-storage` turns into one line on stderr and an exit code.

Messages name the value, what was expected and the fix. They never carry a secret: the CLI
additionally passes every message through `config.redact` before printing it.
"""

from __future__ import annotations


class DeepStorageError(Exception):
    """Base class: a failure the user can act on. `exit_code` is what the CLI exits with."""

    exit_code = 1


class InputError(DeepStorageError):
    """A bad argument or setting (date, range, URI, missing env var)."""

    exit_code = 2


class SourceError(DeepStorageError):
    """The PostgreSQL source could not be reached, refused the login or lacks the table."""

    exit_code = 3


class StoreError(DeepStorageError):
    """Object storage could not be reached, refused the credentials or lacks the bucket."""

    exit_code = 4


class LakeStateError(DeepStorageError):
    """The lake is not in the state a step needs (a day missing or interrupted)."""

    exit_code = 5


class LakeBusyError(LakeStateError):
    """Another run holds the lake's writer lease and did not finish within the wait."""

    exit_code = 8


class QualityGateError(DeepStorageError):
    """A data-quality rule of level `fail` broke."""

    exit_code = 6


class PlatformError(DeepStorageError):
    """The Kubeflow Pipelines API could not be reached, refused the token or rejected a request."""

    exit_code = 7


class MetastoreError(DeepStorageError):
    """The Hive Metastore could not be reached or refused a request; the lake is untouched."""

    exit_code = 9


class CatalogConflictError(DeepStorageError):
    """A table name in the metastore is already taken by a table at another location."""

    exit_code = 10
