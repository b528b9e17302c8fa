"""The oculi error hierarchy.

Only the interfaces (``oculi.cli``, ``oculi.server``) map these to exit codes or HTTP
status; library code raises them with a message that says what to do.
"""

from __future__ import annotations


class OculiError(Exception):
    """Base of every error oculi raises on purpose."""

    exit_code = 1
    http_status = 500


class InputError(OculiError):
    """The caller gave something unusable: a missing/corrupt/oversized file, an empty question."""

    exit_code = 2
    http_status = 400


class NotFoundError(InputError):
    """A named thing (collection, job, key) does not exist."""

    http_status = 404


class ModelAssetError(OculiError):
    """A model asset is missing or fails its checksum."""

    exit_code = 3
    http_status = 503


class ConfigError(OculiError):
    """Settings are inconsistent or name an unknown backend."""

    exit_code = 2
    http_status = 500


class ModelConfigError(ConfigError):
    """A model is not configured, is unknown, cannot serve the task asked of it, or its
    ``[models.NAME]`` table is invalid. The message names the configured models and the file
    to edit. Exit code 4; HTTP 400 (a request named a model this server does not have)."""

    exit_code = 4
    http_status = 400


class BackendError(OculiError):
    """A model backend failed while running (a remote server refused, a model crashed)."""

    exit_code = 1
    http_status = 502


class StoreCorruptError(OculiError):
    """A collection's stored data cannot be read or fails its checksums.

    Never treated as "empty": nothing is overwritten or re-created on top of it. The message
    names the collection and the fix (``oculi collections repair NAME``). HTTP 503: the
    collection is unavailable until it is repaired.
    """

    exit_code = 5
    http_status = 503

    def __init__(self, message: str, *, collection: str | None = None) -> None:
        super().__init__(message)
        self.collection = collection


class StoreFullError(OculiError):
    """The disk holding a collection is full (or too full for the next write).

    The message names the path and the free space needed; what was written before is kept.
    HTTP 507 (Insufficient Storage).
    """

    exit_code = 6
    http_status = 507

    def __init__(self, message: str, *, path: str | None = None, needed: int | None = None,
                 free: int | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.needed = needed
        self.free = free


class StoreUnavailableError(OculiError):
    """A store or blob store cannot be reached or refuses oculi (a server down, a bucket that
    does not exist, credentials it rejects).

    The message names the store and its endpoint and what to check; nothing half-written is
    kept. Exit code 7; HTTP 503 (try again once the store is back).
    """

    exit_code = 7
    http_status = 503


def input_error_from_os(name: str, e: OSError, *, missing: str = "no such file or directory") -> InputError:
    """One clear sentence for a file or folder that could not be opened or read.

    Example:
        >>> str(input_error_from_os("a.jpg", PermissionError(13, "Permission denied")))
        'a.jpg: permission denied'
    """
    if isinstance(e, FileNotFoundError):
        return InputError(f"{name}: {missing}")
    if isinstance(e, PermissionError):
        return InputError(f"{name}: permission denied")
    if isinstance(e, IsADirectoryError):
        return InputError(f"{name}: is a directory")
    return InputError(f"{name}: cannot be read ({e.strerror or e})")


class Interrupted(OculiError):
    """Long work was stopped on request (Ctrl-C, SIGTERM); what was done is kept and the
    message says how to go on (e.g. ``--resume``)."""

    exit_code = 130
    http_status = 503
