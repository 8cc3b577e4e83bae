"""Exceptions of the reinterpretation app; all derive from ReinterpretError."""

from hepstore.errors import HepstoreError


class ReinterpretError(HepstoreError):
    code = "reinterpretation_error"
    status = 400


class PatchFailed(ReinterpretError):
    code = "patch_failed"
    status = 422


class PointNotEvaluable(ReinterpretError):
    """The patched workspace cannot be built into a model or fitted."""

    code = "point_not_evaluable"
    status = 422


class TooBusy(ReinterpretError):
    """Too much work pending; retry_after (seconds) becomes the Retry-After header."""

    code = "too_busy"
    status = 429

    def __init__(self, message: str, problems=None, retry_after: float = 30.0):
        super().__init__(message, problems)
        self.retry_after = retry_after
