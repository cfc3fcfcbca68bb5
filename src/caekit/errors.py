"""Errors a user can act on: the CLI prints their message on one line and exits non-zero."""


class CaekitError(Exception):
    """Base class for every error caused by user input (configs, specs, data, run folders)."""


class SpecError(CaekitError):
    """An architecture spec that is malformed or whose shapes do not work out."""


class ConfigError(CaekitError):
    """A run configuration that is malformed or inconsistent."""


class DataError(CaekitError):
    """A dataset that is missing, empty or unreadable."""


class CheckpointError(CaekitError):
    """A checkpoint or run folder that is missing or does not match what is asked of it."""


class TrainingDiverged(CaekitError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""
