"""Exceptions of the reinterpretation app; all derive from ReinterpretError."""

from hepstore.errors import HepstoreError


class ReinterpretError(HepstoreError):
    code = "reinterpretation_error"
    status = 400


class PatchFailed(ReinterpretError):
    code = "patch_failed"
    status = 422


class TooBusy(ReinterpretError):
    code = "too_busy"
    status = 429
