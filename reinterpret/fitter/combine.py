"""Combine several HistFactory workspaces into one, under a declared correlation policy.

Parameters with one name are one parameter across members (pyhf's convention) unless the
policy decorrelates them: each member then gets its own copy, named ``NAME_TAG`` after the
member's tag. Renames (per member or for all) correlate parameters named differently and
resolve channel clashes. The members' measurements are merged into one: the parameter of
interest must have one name, and where members set the same field of one parameter
(bounds, inits, fixed, auxdata, sigmas, factors) differently the policy must say which
member wins. Every clash is reported with the member it is in and a JSON pointer into that
member's workspace, like a validation report; nothing is combined while an error remains.

Pure Python, no Django. Workspaces are plain dicts and are never modified; the combined
workspace shares the members' sample objects wherever no name in them changes, so that the
fitter reads a sample shared by many signal points once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from reinterpret.fitter.combine_policy import (
    CONSTRAINT,
    ERROR,
    PER_BIN,
    POLICY,
    SETTING_FIELDS,
    TAG_PATTERN,
    WARNING,
    CombinationError,
    Member,
    Policy,
    Preference,
    Problem,
    Rename,
)


@dataclass
class Report:
    """What checking the members under the policy found, and the names it settled on."""

    problems: list[Problem] = field(default_factory=list)
    # Per member tag: old parameter name -> combined name (only names that change).
    parameter_names: dict[str, dict[str, str]] = field(default_factory=dict)
    # Per member tag: lumi parameter (old name) -> normsys data of its renamed copy.
    lumi_normsys: dict[str, dict[str, dict]] = field(default_factory=dict)
    channel_names: dict[str, dict[str, str]] = field(default_factory=dict)
    poi: str | None = None
    settings: list[dict] = field(default_factory=list)  # the merged measurement parameters
    summary: dict = field(default_factory=dict)

    @property
    def valid(self) -> bool:
        return not any(p.severity == ERROR for p in self.problems)

    def as_dict(self) -> dict:
        return {
            "valid": self.valid,
            "problems": [p.as_dict() for p in self.problems],
            "summary": self.summary,
        }


def _escape(token) -> str:
    return str(token).replace("~", "~0").replace("/", "~1")


def _measurement_index(workspace: dict, name: str | None) -> int | None:
    measurements = workspace.get("measurements") or []
    if not measurements:
        return None
    if name is None:
        return 0
    for i, m in enumerate(measurements):
        if m.get("name") == name:
            return i
    return None


def _parameter_uses(workspace: dict) -> dict[str, list[tuple[str, str, int]]]:
    """Per parameter name: (modifier type, pointer of the first modifier, size) per type."""
    nbins = {o["name"]: len(o["data"]) for o in workspace.get("observations", [])}
    uses: dict[str, list[tuple[str, str, int]]] = {}
    for c, channel in enumerate(workspace.get("channels", [])):
        n = nbins.get(channel["name"], 0)
        for s, sample in enumerate(channel["samples"]):
            for m, mod in enumerate(sample.get("modifiers", [])):
                known = uses.setdefault(mod["name"], [])
                if all(t != mod["type"] for t, _, _ in known):
                    size = n if mod["type"] in PER_BIN else 1
                    known.append((mod["type"], f"/channels/{c}/samples/{s}/modifiers/{m}", size))
    return uses


class Combiner:
    """Combines members under a policy. ``report`` holds every problem found on the
    members' own workspaces; ``workspace()`` is their combination, ``point(workspaces)`` the
    combination of patched variants of them (signal points), both shared-structure dicts."""

    def __init__(self, members: Sequence[Member], policy: Policy | None = None):
        self.members = list(members)
        self.policy = policy or Policy()
        self._samples: dict[tuple, tuple[dict, dict]] = {}
        self.report = self._analyse([m.workspace for m in self.members], final=True)

    # ------------------------------------------------------------------ public
    @property
    def tags(self) -> list[str]:
        return [m.tag for m in self.members]

    def workspace(self) -> dict:
        """The combined workspace (HistFactory JSON 1.0.0); raises CombinationError."""
        if not self.report.valid:
            raise CombinationError("the workspaces cannot be combined", self.report.problems)
        return self._build([m.workspace for m in self.members], self.report)

    def point(self, workspaces: Sequence[dict]) -> dict:
        """The combination of one variant per member (e.g. each patched with its signal),
        in member order; a member's own workspace stands for "background only"."""
        if len(workspaces) != len(self.members):
            raise CombinationError(f"{len(workspaces)} workspaces for {len(self.members)} members")
        if not self.report.valid:
            raise CombinationError("the workspaces cannot be combined", self.report.problems)
        report = self._analyse(workspaces, final=False)
        if not report.valid:
            raise CombinationError("the signal workspaces cannot be combined", report.problems)
        return self._build(workspaces, report)

    # ------------------------------------------------------------------ analysis
    def _analyse(self, workspaces: Sequence[dict], final: bool) -> Report:
        report = Report()
        problems = report.problems
        tags = self.tags
        if final:
            self._check_members(problems)
        uses = [_parameter_uses(ws) for ws in workspaces]
        if final:
            self._base_uses = uses
        base_uses = self._base_uses
        measurements = []
        for member, ws in zip(self.members, workspaces, strict=True):
            index = _measurement_index(ws, member.measurement)
            if index is None:
                what = (
                    f"no measurement named {member.measurement!r}"
                    if member.measurement
                    else "no measurement"
                )
                problems.append(Problem(member.tag, "/measurements", ERROR, f"has {what}"))
            measurements.append(index)
        if None in measurements:
            return report
        configs = [
            ws["measurements"][i].get("config", {})
            for ws, i in zip(workspaces, measurements, strict=True)
        ]
        names = [
            [
                *u,
                *(
                    e["name"]
                    for e in c.get("parameters", [])
                    if isinstance(e, dict) and isinstance(e.get("name"), str) and e["name"] not in u
                ),
            ]
            for u, c in zip(uses, configs, strict=True)
        ]
        for k, c in enumerate(configs):
            if isinstance(c.get("poi"), str) and c["poi"] not in names[k]:
                names[k].append(c["poi"])
        channel_maps, renames = self._renames(workspaces, names, problems, final)
        pois = [renames[k].get(c.get("poi"), c.get("poi")) for k, c in enumerate(configs)]
        poi = pois[0]
        if any(p != poi for p in pois) or not poi:
            said = ", ".join(f"{t} {p!r}" for t, p in zip(tags, pois, strict=True))
            for k, p in enumerate(pois[1:], start=1):
                if p != poi:
                    problems.append(
                        Problem(
                            tags[k],
                            f"/measurements/{measurements[k]}/config/poi",
                            ERROR,
                            f"the members name different parameters of interest ({said}); "
                            f"rename one (e.g. --rename {tags[k]}:{p}={poi})",
                        )
                    )
            return report
        report.poi = poi
        maps = self._decorrelate(names, base_uses, uses, renames, poi, problems, final)
        report.parameter_names = dict(zip(tags, maps, strict=True))
        report.channel_names = dict(zip(tags, channel_maps, strict=True))
        self._check_channels(workspaces, channel_maps, problems)
        conversions = self._lumi_conversions(uses, maps, configs, measurements, problems, final)
        report.lumi_normsys = dict(zip(tags, conversions, strict=True))
        self._check_parameters(uses, maps, problems)
        report.settings = self._merge_settings(
            configs, measurements, maps, uses, conversions, problems
        )
        members_of: dict[str, list[str]] = {}
        for k, u in enumerate(uses):
            for n in u:
                members_of.setdefault(maps[k].get(n, n), []).append(tags[k])
        report.summary = {
            "members": tags,
            "poi": poi,
            "measurement": self.policy.measurement_name
            or workspaces[0]["measurements"][measurements[0]].get("name", "combined"),
            "channels": sum(len(ws.get("channels", [])) for ws in workspaces),
            "bins": sum(len(o["data"]) for ws in workspaces for o in ws.get("observations", [])),
            "parameters": len(members_of),
            "shared_parameters": sorted(n for n, m in members_of.items() if len(m) > 1),
            "renamed_parameters": {t: dict(m) for t, m in zip(tags, maps, strict=True) if m},
            "renamed_channels": {t: dict(m) for t, m in zip(tags, channel_maps, strict=True) if m},
        }
        return report

    def _check_members(self, problems: list[Problem]) -> None:
        if len(self.members) < 2:
            problems.append(Problem(POLICY, "/members", ERROR, "give at least two workspaces"))
        seen: set[str] = set()
        for i, member in enumerate(self.members):
            if not TAG_PATTERN.match(member.tag or ""):
                problems.append(
                    Problem(
                        POLICY,
                        f"/members/{i}",
                        ERROR,
                        f"member tag {member.tag!r} must be letters, digits, '_', '.', '-'",
                    )
                )
            if member.tag in seen:
                problems.append(
                    Problem(
                        POLICY, f"/members/{i}", ERROR, f"two members are tagged {member.tag!r}"
                    )
                )
            seen.add(member.tag)
        tags = set(self.tags)
        for i, r in enumerate(self.policy.renames):
            if r.member is not None and r.member not in tags:
                problems.append(
                    Problem(POLICY, f"/renames/{i}", ERROR, f"no member is tagged {r.member!r}")
                )
        for i, p in enumerate(self.policy.prefer):
            if p.member not in tags:
                problems.append(
                    Problem(POLICY, f"/prefer/{i}", ERROR, f"no member is tagged {p.member!r}")
                )

    def _renames(self, workspaces, names, problems, final):
        """Per member: the channel renames and the parameter renames the policy asks for."""
        channel_maps: list[dict[str, str]] = []
        parameter_maps: list[dict[str, str]] = []
        applied = [False] * len(self.policy.renames)
        for k, (member, ws) in enumerate(zip(self.members, workspaces, strict=True)):
            channels = [c["name"] for c in ws.get("channels", [])]
            known = set(names[k])
            cmap: dict[str, str] = {}
            pmap: dict[str, str] = {}
            for i, r in enumerate(self.policy.renames):
                if r.member not in (None, member.tag):
                    continue
                if r.old in channels:
                    cmap[r.old] = r.new
                    applied[i] = True
                if r.old in known:
                    pmap[r.old] = r.new
                    applied[i] = True
            renamed = [cmap.get(c, c) for c in channels]
            if len(set(renamed)) != len(renamed):
                problems.append(
                    Problem(member.tag, "/channels", ERROR, "a rename gives two channels one name")
                )
            renamed_params = [pmap.get(n, n) for n in names[k]]
            if final and len(set(renamed_params)) != len(renamed_params):
                problems.append(
                    Problem(
                        member.tag,
                        "",
                        WARNING,
                        "a rename makes two parameters of this member one parameter",
                    )
                )
            channel_maps.append(cmap)
            parameter_maps.append(pmap)
        if final:
            for i, r in enumerate(self.policy.renames):
                if not applied[i]:
                    where = f"member {r.member!r}" if r.member else "any member"
                    problems.append(
                        Problem(
                            POLICY,
                            f"/renames/{i}",
                            ERROR,
                            f"{r.old!r} is neither a channel nor a parameter of {where}",
                        )
                    )
        return channel_maps, parameter_maps

    def _decorrelate(self, names, base_uses, uses, renames, poi, problems, final):
        """Per member: old name -> combined name, renames then decorrelation applied.

        names: per member, every parameter name it mentions (modifiers, measurement
        settings, the POI). A name is decorrelated only where more than one member uses it;
        in correlate-only mode also a name no background workspace uses (it came with a
        signal patch)."""
        policy = self.policy
        explicit = set(policy.decorrelate)

        def count(all_uses) -> dict[str, int]:
            users: dict[str, int] = {}
            for k, u in enumerate(all_uses):
                for n in {renames[k].get(n, n) for n in u}:
                    users[n] = users.get(n, 0) + 1
            return users

        users, base_users = count(uses), count(base_uses)
        if final:
            for i, name in enumerate(policy.decorrelate):
                if name == poi:
                    problems.append(
                        Problem(
                            POLICY,
                            f"/decorrelate/{i}",
                            ERROR,
                            f"{name!r} is the parameter of interest: it is one parameter",
                        )
                    )
                elif users.get(name, 0) < 2:
                    problems.append(
                        Problem(
                            POLICY,
                            f"/decorrelate/{i}",
                            WARNING,
                            f"{name!r} is used by {users.get(name, 0)} member(s): "
                            "nothing to decorrelate",
                        )
                    )
            for i, name in enumerate(policy.correlate_only or ()):
                if name not in users:
                    problems.append(
                        Problem(POLICY, f"/correlate_only/{i}", WARNING, f"no member uses {name!r}")
                    )
        maps: list[dict[str, str]] = []
        suffixed: dict[str, tuple[int, str]] = {}
        for k, member in enumerate(self.members):
            out: dict[str, str] = {}
            for name in names[k]:
                new = renames[k].get(name, name)
                if new != poi and (
                    (new in explicit and users.get(new, 0) > 1)
                    or (
                        policy.correlate_only is not None
                        and new not in policy.correlate_only
                        and (users.get(new, 0) > 1 or new not in base_users)
                    )
                ):
                    new = f"{new}_{member.tag}"
                    suffixed[new] = (k, name)
                if new != name:
                    out[name] = new
            maps.append(out)
        # A decorrelated copy must not take a name some member already uses.
        for new, (k, old) in suffixed.items():
            for j, other in enumerate(self.members):
                clash = [n for n in names[j] if maps[j].get(n, n) == new and n != old]
                if clash:
                    where = uses[k][old][0][1] + "/name" if old in uses[k] else ""
                    problems.append(
                        Problem(
                            self.members[k].tag,
                            where,
                            ERROR,
                            f"the decorrelated copy of {old!r} would be named {new!r}, which "
                            f"member {other.tag!r} already uses; rename one of them",
                        )
                    )
        return maps

    def _check_channels(self, workspaces, channel_maps, problems) -> None:
        seen: dict[str, tuple[str, int, str]] = {}
        for k, (member, ws) in enumerate(zip(self.members, workspaces, strict=True)):
            for c, channel in enumerate(ws.get("channels", [])):
                name = channel_maps[k].get(channel["name"], channel["name"])
                if name in seen:
                    tag, c0, old0 = seen[name]
                    problems.append(
                        Problem(
                            member.tag,
                            f"/channels/{c}/name",
                            ERROR,
                            f"channel {name!r} is also channel {c0} of member {tag!r}; "
                            f"rename one (e.g. --rename {member.tag}:{channel['name']}="
                            f"{channel['name']}_{member.tag})",
                        )
                    )
                else:
                    seen[name] = (member.tag, c, channel["name"])

    def _check_parameters(self, uses, maps, problems) -> None:
        first: dict[str, tuple[str, str, str, int]] = {}
        for k, member in enumerate(self.members):
            for old, entries in uses[k].items():
                name = maps[k].get(old, old)
                for mtype, pointer, size in entries:
                    if name not in first:
                        first[name] = (member.tag, mtype, pointer, size)
                        continue
                    tag, mtype0, pointer0, size0 = first[name]
                    if tag == member.tag:
                        continue
                    if CONSTRAINT.get(mtype, mtype) != CONSTRAINT.get(mtype0, mtype0):
                        problems.append(
                            Problem(
                                member.tag,
                                pointer,
                                ERROR,
                                f"parameter {name!r} is a {mtype} here ({CONSTRAINT.get(mtype)}) "
                                f"but a {mtype0} in member {tag!r} ({pointer0}, "
                                f"{CONSTRAINT.get(mtype0)}); decorrelate or rename it",
                            )
                        )
                    elif size != size0:
                        problems.append(
                            Problem(
                                member.tag,
                                pointer,
                                ERROR,
                                f"parameter {name!r} has {size} components here but {size0} in "
                                f"member {tag!r} ({pointer0}); decorrelate or rename it",
                            )
                        )
                    elif mtype in ("staterror", "shapesys"):
                        problems.append(
                            Problem(
                                member.tag,
                                pointer,
                                WARNING,
                                f"{mtype} parameter {name!r} is shared with member {tag!r}: the "
                                "statistical uncertainties of different channels become one "
                                "parameter per bin; decorrelate it unless that is meant",
                            )
                        )

    def _lumi_conversions(self, uses, maps, configs, measurements, problems, final):
        """Per member: {lumi parameter: normsys data} for lumi parameters that get another
        name. HistFactory JSON 1.0.0 (pyhf's schema) names a lumi modifier "lumi" and
        nothing else, so a renamed or decorrelated copy becomes a normsys modifier with
        hi = 1 + sigma, lo = 1 - sigma: the same Gaussian constraint, interpolated (code 4)
        instead of linear; its lumi settings but "fixed" are dropped."""
        out: list[dict[str, dict]] = []
        for k, member in enumerate(self.members):
            conv: dict[str, dict] = {}
            settings = {
                e["name"]: (i, e)
                for i, e in enumerate(configs[k].get("parameters", []))
                if isinstance(e, dict) and "name" in e
            }
            for old, entries in uses[k].items():
                new = maps[k].get(old, old)
                if new == old or new == "lumi" or all(t != "lumi" for t, _, _ in entries):
                    continue
                index, entry = settings.get(old, (None, {}))
                pointer = f"/measurements/{measurements[k]}/config/parameters/{index}"
                sigma = (entry.get("sigmas") or [None])[0]
                aux = (entry.get("auxdata") or [1.0])[0]
                if not isinstance(sigma, int | float) or aux != 1:
                    problems.append(
                        Problem(
                            member.tag,
                            pointer if index is not None else entries[0][1],
                            ERROR,
                            f"lumi parameter {old!r} becomes {new!r}, which HistFactory JSON "
                            "1.0.0 allows only as a normsys modifier; that needs its sigmas "
                            "and auxdata 1 in the measurement",
                        )
                    )
                    continue
                conv[old] = {"hi": 1.0 + sigma, "lo": 1.0 - sigma}
                if final:
                    problems.append(
                        Problem(
                            member.tag,
                            entries[0][1],
                            WARNING,
                            f"lumi parameter {old!r} becomes normsys {new!r} (hi {1 + sigma:g}, "
                            f"lo {1 - sigma:g}): HistFactory JSON 1.0.0 names a lumi modifier "
                            "'lumi' only; same Gaussian constraint, code-4 interpolation "
                            "instead of a linear factor",
                        )
                    )
            out.append(conv)
        return out

    def _merge_settings(
        self, configs, measurements, maps, uses, conversions, problems
    ) -> list[dict]:
        """One list of measurement parameter settings; disagreements resolved by the
        policy's preferences or reported."""
        prefer = {p.parameter: p.member for p in self.policy.prefer}
        merged: dict[str, dict] = {}
        origin: dict[str, dict[str, tuple[str, str]]] = {}  # name -> field -> (tag, pointer)
        order: list[str] = []
        for k, member in enumerate(self.members):
            for i, entry in enumerate(configs[k].get("parameters", [])):
                if not isinstance(entry, dict) or "name" not in entry:
                    continue
                name = maps[k].get(entry["name"], entry["name"])
                pointer = f"/measurements/{measurements[k]}/config/parameters/{i}"
                if entry["name"] in conversions[k]:
                    # A normsys now: lumi's auxdata, sigmas, bounds and inits do not apply.
                    entry = {key: entry[key] for key in ("name", "fixed") if key in entry}
                    if len(entry) == 1:
                        continue
                if name not in merged:
                    merged[name] = {"name": name}
                    origin[name] = {}
                    order.append(name)
                for key in SETTING_FIELDS:
                    if key not in entry:
                        continue
                    if key not in merged[name]:
                        merged[name][key] = entry[key]
                        origin[name][key] = (member.tag, pointer)
                        continue
                    if merged[name][key] == entry[key]:
                        continue
                    tag0, pointer0 = origin[name][key]
                    winner = prefer.get(name, prefer.get(None))
                    if winner in (tag0, member.tag):
                        if winner == member.tag:
                            merged[name][key] = entry[key]
                            origin[name][key] = (member.tag, pointer)
                        loser = tag0 if winner == member.tag else member.tag
                        problems.append(
                            Problem(
                                member.tag,
                                f"{pointer}/{key}",
                                WARNING,
                                f"members {tag0!r} and {member.tag!r} set {key} of {name!r} "
                                f"differently; {winner!r}'s setting wins over {loser!r}'s",
                            )
                        )
                    else:
                        problems.append(
                            Problem(
                                member.tag,
                                f"{pointer}/{key}",
                                ERROR,
                                f"{key} of {name!r} is {entry[key]!r} here but "
                                f"{merged[name][key]!r} in member {tag0!r} ({pointer0}/{key}); "
                                f"say which wins (e.g. --prefer {name}={tag0})",
                            )
                        )
        # A member that uses a parameter another member configures, without configuring it
        # itself, gets the other's settings: worth a word.
        for k, member in enumerate(self.members):
            own = {
                maps[k].get(e["name"], e["name"])
                for e in configs[k].get("parameters", [])
                if isinstance(e, dict) and "name" in e
            }
            for old, entries in uses[k].items():
                name = maps[k].get(old, old)
                if name in merged and name not in own:
                    tags = sorted({t for t, _ in origin[name].values()})
                    problems.append(
                        Problem(
                            member.tag,
                            entries[0][1],
                            WARNING,
                            f"{name!r} takes the measurement settings of member(s) "
                            f"{', '.join(tags)}; this member's measurement does not set it",
                        )
                    )
        return [merged[n] for n in order]

    # ------------------------------------------------------------------ building
    def _build(self, workspaces: Sequence[dict], report: Report) -> dict:
        channels, observations = [], []
        for member, ws in zip(self.members, workspaces, strict=True):
            cmap = report.channel_names[member.tag]
            pmap = report.parameter_names[member.tag]
            conv = report.lumi_normsys[member.tag]
            for channel in ws["channels"]:
                samples = [self._sample(s, pmap, conv) for s in channel["samples"]]
                name = cmap.get(channel["name"], channel["name"])
                if name == channel["name"] and all(
                    a is b for a, b in zip(samples, channel["samples"], strict=True)
                ):
                    channels.append(channel)
                else:
                    channels.append({**channel, "name": name, "samples": samples})
            for obs in ws["observations"]:
                name = cmap.get(obs["name"], obs["name"])
                observations.append(obs if name == obs["name"] else {**obs, "name": name})
        measurement = {
            "name": report.summary["measurement"],
            "config": {"poi": report.poi, "parameters": report.settings},
        }
        return {
            "channels": channels,
            "observations": observations,
            "measurements": [measurement],
            "version": "1.0.0",
        }

    def _sample(self, sample: dict, pmap: dict[str, str], conv: dict[str, dict]) -> dict:
        """The sample with its modifiers renamed (a renamed lumi modifier as normsys); the
        same object when nothing changes, and the same renamed object every time it is met
        again with the same names."""
        modifiers = sample.get("modifiers", [])
        names = tuple(
            (
                pmap.get(m["name"]),
                tuple(conv[m["name"]].values())
                if m["type"] == "lumi" and m["name"] in conv
                else None,
            )
            for m in modifiers
        )
        if not any(new for new, _ in names):
            return sample
        key = (id(sample), names)
        hit = self._samples.get(key)
        if hit is not None and hit[0] is sample:
            return hit[1]
        renamed = {**sample, "modifiers": []}
        for m, (new, normsys) in zip(modifiers, names, strict=True):
            if normsys is not None:
                m = {"name": new, "type": "normsys", "data": {"hi": normsys[0], "lo": normsys[1]}}
            elif new:
                m = {**m, "name": new}
            renamed["modifiers"].append(m)
        self._samples[key] = (sample, renamed)
        return renamed


def combine(members: Sequence[Member], policy: Policy | None = None) -> dict:
    """The combined workspace of members under policy; raises CombinationError."""
    return Combiner(members, policy).workspace()


__all__ = [
    "CombinationError",
    "Combiner",
    "Member",
    "Policy",
    "Preference",
    "Problem",
    "Rename",
    "Report",
    "combine",
]
