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


class ConflictError(OssyError):
    http_status = 409


class UnavailableError(OssyError):
    http_status = 503


USER_ERRORS = (OssyError, ModelError)

__all__ = [
    "CheckpointError",
    "ConfigError",
    "ConflictError",
    "ModelError",
    "NotFoundError",
    "OssyError",
    "USER_ERRORS",
    "UnavailableError",
]
