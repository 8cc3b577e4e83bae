"""Signal points of a combination: from each member, the point with the same label values.

Labels are matched by name (a member's labels can be mapped onto the combination's names);
the combination's labels are those every member has. A member without a point for some
label values contributes its background only to that combined point, and the point says so.
Pure Python, no Django.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from reinterpret.fitter.combine_policy import ERROR, WARNING, CombinationError, Problem


@dataclass(frozen=True)
class Grid:
    """One member's signal points: its labels and (name, values) per point."""

    tag: str
    labels: tuple[str, ...]
    points: tuple[tuple[str, tuple], ...]


@dataclass(frozen=True)
class CombinedPoint:
    """A point of the combination. sources: member tag -> that member's point name, or
    None where the member contributes background only."""

    name: str
    values: tuple
    sources: tuple[tuple[str, str | None], ...]

    @property
    def background_only(self) -> list[str]:
        return [tag for tag, name in self.sources if name is None]

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "values": list(self.values),
            "members": {tag: name for tag, name in self.sources},
            "background_only": self.background_only,
        }


def _key(value):
    # 1000 and 1000.0 are the same label value; strings compare as they are.
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return float(value)
    return value


def match_points(
    grids: Sequence[Grid], label_map: Mapping[str, Mapping[str, str]] | None = None
) -> tuple[tuple[str, ...], list[CombinedPoint], list[Problem]]:
    """(labels, points, warnings): the combined grid, in the first member's order and then
    points only later members have. label_map: member tag -> {member label: combined label}.
    Raises CombinationError when the members share no label."""
    label_map = label_map or {}
    problems: list[Problem] = []
    renamed = []
    for grid in grids:
        mapping = label_map.get(grid.tag, {})
        for old in mapping:
            if old not in grid.labels:
                problems.append(
                    Problem(
                        grid.tag,
                        "/metadata/labels",
                        ERROR,
                        f"the label map names {old!r}, which is not one of {list(grid.labels)}",
                    )
                )
        renamed.append(tuple(mapping.get(label, label) for label in grid.labels))
    common = (
        [label for label in renamed[0] if all(label in r for r in renamed[1:])] if grids else []
    )
    if not common and grids:
        said = "; ".join(f"{g.tag}: {list(r)}" for g, r in zip(grids, renamed, strict=True))
        problems.append(
            Problem(
                "policy",
                "/label_map",
                ERROR,
                f"the members share no signal label ({said}); map one member's labels onto "
                "another's",
            )
        )
    if any(p.severity == ERROR for p in problems):
        raise CombinationError("the signal grids cannot be matched", problems)
    order: list[tuple] = []
    values_of: dict[tuple, tuple] = {}
    found: dict[tuple, dict[str, str]] = {}
    for grid, labels in zip(grids, renamed, strict=True):
        index = [labels.index(label) for label in common]
        for name, values in grid.points:
            values = tuple(values)
            if len(values) != len(labels):
                problems.append(
                    Problem(
                        grid.tag,
                        f"/patches/{name}",
                        WARNING,
                        f"point {name!r} has {len(values)} label values for {len(labels)} labels;"
                        " left out",
                    )
                )
                continue
            picked = tuple(values[i] for i in index)
            key = tuple(_key(v) for v in picked)
            if key not in found:
                found[key] = {}
                values_of[key] = picked
                order.append(key)
            if grid.tag in found[key]:
                problems.append(
                    Problem(
                        grid.tag,
                        f"/patches/{name}",
                        WARNING,
                        f"points {found[key][grid.tag]!r} and {name!r} have the same values of "
                        f"{common}; the first one is used",
                    )
                )
                continue
            found[key][grid.tag] = name
    points = []
    for key in order:
        sources = tuple((g.tag, found[key].get(g.tag)) for g in grids)
        names = list(dict.fromkeys(n for _, n in sources if n is not None))
        points.append(CombinedPoint("+".join(names), values_of[key], sources))
    return tuple(common), points, problems
