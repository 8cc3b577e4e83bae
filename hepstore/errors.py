"""Exceptions of the archive app; every one the app raises derives from HepstoreError."""

from __future__ import annotations


class HepstoreError(Exception):
    """Base class. code is the machine-readable error code of the API envelope."""

    code = "error"
    status = 400

    def __init__(self, message: str, problems: list[dict] | None = None):
        super().__init__(message)
        self.message = message
        self.problems = problems or []


class InvalidSubmission(HepstoreError):
    code = "invalid_submission"
    status = 422


class UnusableInput(HepstoreError):
    """The input cannot be read at all (unsupported file type, unsafe archive, too large)."""

    code = "unusable_input"
    status = 400


class TooLarge(UnusableInput):
    code = "too_large"
    status = 413


class NotFound(HepstoreError):
    code = "not_found"
    status = 404


class PermissionDenied(HepstoreError):
    code = "permission_denied"
    status = 403


class Busy(HepstoreError):
    """The server is at its limit of concurrent work; retry_after is in seconds."""

    code = "busy"
    status = 503

    def __init__(self, message: str, retry_after: int = 10):
        super().__init__(message)
        self.retry_after = retry_after


class StorageFailure(HepstoreError):
    """The data directory cannot be written (disk full, read-only); nothing was stored."""

    code = "storage_unavailable"
    status = 503

    def __init__(self, message: str, status: int = 503):
        super().__init__(message)
        self.status = status


class AlreadyStored(HepstoreError):
    """A submission identical in content to the latest version of its analysis."""

    code = "already_stored"
    status = 409


class AmbiguousPoint(HepstoreError):
    """Label values that name more than one signal point (the candidates are the problems)."""

    code = "ambiguous"
    status = 400


class BadParameters(HepstoreError):
    """Query parameters that do not have the documented type or range."""

    code = "invalid_parameter"

    @classmethod
    def from_form_errors(cls, errors) -> BadParameters:
        """From a Django form's (a FilterSet's) errors: one problem per parameter."""
        problems = [
            {"parameter": name, "severity": "error", "message": str(message)}
            for name, messages in errors.items()
            for message in messages
        ]
        names = ", ".join(errors)
        detail = "; ".join(f"{p['parameter']}: {p['message']}" for p in problems)
        return cls(f"invalid query parameter {names}: {detail}", problems)
