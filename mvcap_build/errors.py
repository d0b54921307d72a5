"""Errors the user can fix. The CLI prints these as one line with exit code 2; anything else is
our bug and keeps its traceback.

Each subclass also derives from the builtin it refines (ValueError, RuntimeError, ...), so
library callers can catch what they would expect.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem with the configuration, the input data or the environment, not with mvcap."""


class ConfigError(UserError, ValueError):
    """A configuration the user must fix; the message says where and what."""


class RootError(UserError, OSError):
    """The dataset root cannot be used: it is a file, missing, or not writable."""


class EnvironmentBroken(UserError, RuntimeError):
    """A stage cannot run here at all (no bpy, no requested GPU, no model): stop, say what to do."""


class StaleUnitsError(UserError, RuntimeError):
    """Committed units were made with other settings; the run stops before doing any work."""


class SourceError(UserError, ValueError):
    """An object source is unusable (missing folder, unreadable list): the run cannot start."""


class ManifestError(UserError, RuntimeError):
    """A file in the dataset root is not what the stage contract says it must be."""


class DiskFullError(UserError, OSError):
    """The disk (or quota) holding the dataset root is full: the run stops, committed work is kept."""


class InputNotFound(UserError, FileNotFoundError):
    """A file or folder the run reads is not there (an export's shards, a checkpoint, a model)."""


class ExportUnusable(ManifestError, ValueError):
    """An export cannot be trained or evaluated on as it is (columns missing, another layout)."""


class CheckpointError(UserError, ValueError):
    """A checkpoint cannot be used here: damaged, of another format, or for another model."""


class TrainingDiverged(UserError, FloatingPointError):
    """The loss is no longer finite: a setting (most often the learning rate) must change."""
