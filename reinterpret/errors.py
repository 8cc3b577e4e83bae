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
    code = "too_busy"
    status = 429
