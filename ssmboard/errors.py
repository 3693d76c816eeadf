"""One family of user-facing errors.

Everything a user can cause (a bad spec, an unknown backend, a missing model, a corrupt
store) raises a subclass of :class:`SsmboardError` whose message says what was wrong and
what to do. The CLI prints such errors as one line and exits 2, without a traceback.
"""
from __future__ import annotations


class SsmboardError(Exception):
    """Base of every error a user can cause and fix."""


class SpecError(SsmboardError, ValueError):
    """A variant spec field is invalid (bad name, chunk size, dtype, compile mode, ...)."""


class UnknownBackendError(SpecError):
    """A scan backend name that no backend registers."""


class VariantNotFoundError(SsmboardError, KeyError):
    """No variant of that name is registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class VariantConflictError(SsmboardError):
    """A variant name is already registered with a different spec."""


class StoreError(SsmboardError):
    """The results store cannot be opened or used (corrupt file, newer schema, bad URL)."""


class ModelLoadError(SsmboardError):
    """The model a spec names cannot be found or loaded."""


class DeviceError(SsmboardError):
    """The requested backend needs hardware this machine lacks (for instance a GPU)."""


class EvaluationError(SsmboardError):
    """An evaluation cannot run as asked (unknown suite, bad parameters, interrupted)."""


class JobError(SsmboardError):
    """A queue operation cannot be done as asked (no such job, cancel a finished one, bad schedule)."""
