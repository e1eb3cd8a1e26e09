"""Errors raised by the model layer (config, checkpoint and weight problems).

Kept inside `ossy.model` so the model package imports nothing else from ossy; `ossy.errors`
re-exports them with their HTTP status.
"""


class ModelError(Exception):
    """A problem with a model's files or configuration, caused by the input, not by ossy."""

    http_status = 400


class ConfigError(ModelError):
    """config.json is missing, unreadable, not gpt-oss, or has missing/contradictory keys."""


class CheckpointError(ModelError):
    """A weights file is missing, truncated, or lacks or misshapes a tensor."""
