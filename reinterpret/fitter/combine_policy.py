"""The policy of a combination (renames, decorrelations, which member's settings win),
the members and the problems a combination reports. Pure Python, no Django."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from reinterpret.fitter.errors import FitterError

ERROR, WARNING = "error", "warning"
SETTING_FIELDS = ("bounds", "inits", "fixed", "auxdata", "sigmas", "factors")
CONSTRAINT = {
    "normfactor": "unconstrained",
    "shapefactor": "unconstrained",
    "normsys": "Gaussian",
    "histosys": "Gaussian",
    "lumi": "Gaussian",
    "staterror": "Gaussian",
    "shapesys": "Poisson",
}
PER_BIN = {"shapefactor", "staterror", "shapesys"}
TAG_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
POLICY = "policy"  # the "file" of problems that concern the policy itself


@dataclass(frozen=True)
class Rename:
    """Rename a channel or parameter ``old`` to ``new`` in one member (by tag) or in all."""

    old: str
    new: str
    member: str | None = None

    def as_dict(self) -> dict:
        return {"old": self.old, "new": self.new, "member": self.member}


@dataclass(frozen=True)
class Preference:
    """Where members disagree on a setting of ``parameter`` (or of any parameter, when
    None), the settings of member ``member`` win."""

    member: str
    parameter: str | None = None

    def as_dict(self) -> dict:
        return {"member": self.member, "parameter": self.parameter}


@dataclass(frozen=True)
class Policy:
    """How the members' parameters are correlated.

    decorrelate: names that get one parameter per member. correlate_only: when not None,
    every parameter that more than one member uses is decorrelated except these (and the
    parameter of interest), as are names that first appear in signal patches.
    """

    decorrelate: tuple[str, ...] = ()
    correlate_only: tuple[str, ...] | None = None
    renames: tuple[Rename, ...] = ()
    prefer: tuple[Preference, ...] = ()
    measurement_name: str | None = None

    def as_dict(self) -> dict:
        return {
            "decorrelate": list(self.decorrelate),
            "correlate_only": None if self.correlate_only is None else list(self.correlate_only),
            "renames": [r.as_dict() for r in self.renames],
            "prefer": [p.as_dict() for p in self.prefer],
            "measurement_name": self.measurement_name,
        }

    @classmethod
    def from_dict(cls, data: dict) -> Policy:
        """The policy from its as_dict form; raises CombinationError on malformed input."""
        problems: list[Problem] = []
        if not isinstance(data, dict):
            raise CombinationError(
                "the policy is not usable", [Problem(POLICY, "", ERROR, "must be an object")]
            )

        def names(key: str) -> tuple[str, ...]:
            value = data.get(key) or []
            if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                problems.append(Problem(POLICY, f"/{key}", ERROR, "must be a list of names"))
                return ()
            return tuple(value)

        def entries(key: str, fields: tuple[str, ...], required: tuple[str, ...]) -> list[dict]:
            value = data.get(key) or []
            out = []
            if not isinstance(value, list):
                problems.append(Problem(POLICY, f"/{key}", ERROR, "must be a list"))
                return out
            for i, item in enumerate(value):
                ok = isinstance(item, dict) and all(
                    isinstance(item.get(f), str) and item.get(f) for f in required
                )
                ok = ok and all(item.get(f) is None or isinstance(item[f], str) for f in fields)
                if not ok:
                    problems.append(
                        Problem(
                            POLICY,
                            f"/{key}/{i}",
                            ERROR,
                            f"must be an object with {', '.join(required)} (strings)",
                        )
                    )
                    continue
                out.append({f: item.get(f) for f in fields})
            return out

        unknown = sorted(set(data) - {*cls().as_dict()})
        for key in unknown:
            problems.append(Problem(POLICY, f"/{key}", ERROR, f"unknown policy field {key!r}"))
        decorrelate = names("decorrelate")
        correlate_only = None if data.get("correlate_only") is None else names("correlate_only")
        renames = entries("renames", ("old", "new", "member"), ("old", "new"))
        prefer = entries("prefer", ("member", "parameter"), ("member",))
        measurement = data.get("measurement_name")
        if measurement is not None and not (isinstance(measurement, str) and measurement):
            problems.append(Problem(POLICY, "/measurement_name", ERROR, "must be a name"))
            measurement = None
        if problems:
            raise CombinationError("the policy is not usable", problems)
        return cls(
            decorrelate=decorrelate,
            correlate_only=correlate_only,
            renames=tuple(Rename(**r) for r in renames),
            prefer=tuple(Preference(**p) for p in prefer),
            measurement_name=measurement,
        )


@dataclass(frozen=True)
class Member:
    """One workspace to combine. tag names it in problems and in decorrelated parameter
    names; measurement picks one of its measurements (default: the first)."""

    tag: str
    workspace: dict
    measurement: str | None = None


@dataclass(frozen=True)
class Problem:
    """A clash or doubt: file is the member's tag (or "policy"), pointer a JSON pointer
    into that member's workspace (or into the policy)."""

    file: str
    pointer: str
    severity: str
    message: str

    def as_dict(self) -> dict:
        return {
            "file": self.file,
            "pointer": self.pointer,
            "severity": self.severity,
            "message": self.message,
        }


class CombinationError(FitterError):
    """The members cannot be combined under the policy; problems says every reason."""

    def __init__(self, message: str, problems: Sequence[Problem] = ()):
        super().__init__(message)
        self.message = message
        self.problems = list(problems)

    def __str__(self) -> str:
        lines = [self.message]
        lines += [
            f"  {p.severity}: {p.file}{'#' + p.pointer if p.pointer else ''}: {p.message}"
            for p in self.problems
        ]
        return "\n".join(lines)
