"""Typed errors with the HTTP status they map to.

Every error a user can cause is an `OssyError` (or a `ModelError` from the model layer, which
may not import this module); the CLI prints such errors as one line without a traceback and the
server turns them into JSON error bodies with `http_status`. Anything else is a bug in ossy.
"""

from ossy.model.errors import CheckpointError, ConfigError, ModelError


class OssyError(Exception):
    """Base of user-caused errors outside the model layer."""

    http_status = 400


class NotFoundError(OssyError):
    http_status = 404


class InsecureError(OssyError):
    """400: a registry over plain HTTP without --insecure."""


class RegistryError(OssyError):
    """502: a registry (or the Hub) refused or failed a request; its answer in one line."""

    http_status = 502


class DigestMismatchError(RegistryError):
    """502: a downloaded blob whose content does not match its digest (nothing was stored)."""


class ConflictError(OssyError):
    http_status = 409


class ForbiddenError(OssyError):
    """403: a browser origin or Host header the server does not accept."""

    http_status = 403


class StalledError(OssyError):
    """408: a request body stopped arriving."""

    http_status = 408


class TooLargeError(OssyError):
    """413: a request body over the server's limit."""

    http_status = 413


class NoSpaceError(OssyError):
    """507: the disk filled up while writing; nothing half-written is left."""

    http_status = 507


class NotEnoughMemoryError(OssyError):
    """507: loading the model would take more memory than the machine has free."""

    http_status = 507


class UnavailableError(OssyError):
    http_status = 503


USER_ERRORS = (OssyError, ModelError)

__all__ = [
    "CheckpointError",
    "ConfigError",
    "ConflictError",
    "DigestMismatchError",
    "ForbiddenError",
    "InsecureError",
    "ModelError",
    "NoSpaceError",
    "NotEnoughMemoryError",
    "NotFoundError",
    "OssyError",
    "RegistryError",
    "StalledError",
    "TooLargeError",
    "USER_ERRORS",
    "UnavailableError",
]
