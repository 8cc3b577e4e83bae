"""Exceptions raised by the fitter; all derive from FitterError."""


class FitterError(Exception):
    """Base class of every error the fitter raises."""


class ModelError(FitterError):
    """The workspace cannot be compiled into a model (inconsistent or unsupported content)."""
