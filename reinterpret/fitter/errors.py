"""Exceptions raised by the fitter; all derive from FitterError."""


class FitterError(Exception):
    """Base class of every error the fitter raises."""


class ModelError(FitterError):
    """The workspace cannot be compiled into a model (inconsistent or unsupported content).

    pointer, when known, is the JSON pointer of the offending part of the workspace."""

    def __init__(self, message: str, pointer: str | None = None):
        super().__init__(message)
        self.pointer = pointer
