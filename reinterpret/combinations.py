"""Combination services on plain documents: the combined workspace of every signal point
of a combination, and a combined patchset (what `manage.py combine --patchset` writes).

The merging rules live in the fitter package (reinterpret.fitter.combine); this module adds
what needs the archive's tools (JSON Patch application, the patchset digest convention).
Stored combinations (Django models) are served by reinterpret.combination_services.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from hepstore.jsonio import patchset_digest
from reinterpret.fitter.combine import Combiner
from reinterpret.fitter.combine_points import CombinedPoint, Grid, match_points
from reinterpret.fitter.combine_policy import Problem
from reinterpret.services import Point, apply_patch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MemberSignals:
    """A member's signal patchset as read from a file or the archive: labels, and per
    point its name, label values and patch operations (or a loader of them)."""

    tag: str
    labels: tuple[str, ...]
    points: tuple[tuple[str, tuple], ...]
    operations: Mapping[str, object]  # name -> list of operations, or a callable returning it
    references: Mapping[str, str] | None = None

    @classmethod
    def from_patchset(cls, tag: str, patchset: dict) -> MemberSignals:
        patches = patchset.get("patches", [])
        return cls(
            tag,
            tuple(patchset.get("metadata", {}).get("labels", [])),
            tuple((p["metadata"]["name"], tuple(p["metadata"].get("values", []))) for p in patches),
            {p["metadata"]["name"]: p["patch"] for p in patches},
            patchset.get("metadata", {}).get("references") or None,
        )

    def patch(self, name: str) -> list:
        ops = self.operations[name]
        return ops() if callable(ops) else ops


def combined_grid(
    signals: Sequence[MemberSignals], label_map: Mapping[str, Mapping[str, str]] | None = None
) -> tuple[tuple[str, ...], list[CombinedPoint], list[Problem]]:
    """The combination's labels and points (see combine_points.match_points)."""
    grids = [Grid(s.tag, s.labels, s.points) for s in signals]
    return match_points(grids, label_map)


def point_workspace(
    combiner: Combiner, signals: Mapping[str, MemberSignals], point: CombinedPoint
) -> dict:
    """The combined workspace of one point: each member patched with its own point, or
    left background-only where it has none."""
    workspaces = []
    for member, (tag, name) in zip(combiner.members, point.sources, strict=True):
        if name is None:
            workspaces.append(member.workspace)
        else:
            workspaces.append(apply_patch(member.workspace, signals[tag].patch(name), name))
    return combiner.point(workspaces)


def evaluation_points(
    combiner: Combiner, signals: Mapping[str, MemberSignals], points: Sequence[CombinedPoint]
) -> list[Point]:
    """Points ready for services.evaluate, named and valued like the combined points."""
    return [Point(p.name, p.values, point_workspace(combiner, signals, p)) for p in points]


def patch_operations(background: dict, workspace: dict) -> list[dict]:
    """RFC 6902 operations that turn the combined background into a combined point: whole
    channels (and observations, measurements) replaced where they differ."""
    ops: list[dict] = []
    for key in ("channels", "observations"):
        old, new = background[key], workspace[key]
        if len(old) != len(new):
            ops.append({"op": "replace", "path": f"/{key}", "value": new})
            continue
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            if a is b or a == b:
                continue
            added = _added_samples(a, b) if key == "channels" else None
            if added is None:
                ops.append({"op": "replace", "path": f"/{key}/{i}", "value": b})
            else:
                ops += [
                    {"op": "add", "path": f"/channels/{i}/samples/{j}", "value": s}
                    for j, s in added
                ]
    if background["measurements"] != workspace["measurements"]:
        ops.append({"op": "replace", "path": "/measurements", "value": workspace["measurements"]})
    return ops


def _added_samples(old: dict, new: dict) -> list[tuple[int, dict]] | None:
    """(index, sample) of the samples new adds to old, in increasing index order (so that
    applying them one by one gives new), or None when new differs otherwise."""
    if {k: v for k, v in old.items() if k != "samples"} != {
        k: v for k, v in new.items() if k != "samples"
    }:
        return None
    added, j = [], 0
    old_samples = old["samples"]
    for i, sample in enumerate(new["samples"]):
        if j < len(old_samples) and (sample is old_samples[j] or sample == old_samples[j]):
            j += 1
        else:
            added.append((i, sample))
    return added if j == len(old_samples) else None


def combined_patchset(
    combiner: Combiner,
    signals: Sequence[MemberSignals],
    label_map: Mapping[str, Mapping[str, str]] | None = None,
) -> tuple[dict, list[Problem]]:
    """A patchset (1.0.0) over the combined background: one patch per combined point, its
    metadata saying which member points went in (and which members are background only)."""
    background = combiner.workspace()
    labels, points, problems = combined_grid(signals, label_map)
    by_tag = {s.tag: s for s in signals}
    patches = []
    for point in points:
        workspace = point_workspace(combiner, by_tag, point)
        patches.append(
            {
                "metadata": {
                    "name": point.name,
                    "values": list(point.values),
                    "members": {tag: name for tag, name in point.sources},
                },
                # The schema wants at least one operation; an empty member patch gives none.
                "patch": patch_operations(background, workspace)
                or [{"op": "test", "path": "/version", "value": "1.0.0"}],
            }
        )
    patchset = {
        "metadata": {
            "name": "combination of " + ", ".join(combiner.tags),
            "description": "signal points matched by label values across "
            + ", ".join(combiner.tags)
            + "; a member missing from a point's 'members' contributes its background only",
            "digests": {"sha256": patchset_digest(background)},
            "labels": list(labels),
            "references": next((dict(s.references) for s in signals if s.references), {}),
        },
        "patches": patches,
        "version": "1.0.0",
    }
    return patchset, problems
