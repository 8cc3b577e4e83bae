"""Validation of likelihood submissions: every problem is collected, none stops the rest.

A Report holds problems (file, JSON pointer, severity, message) and a summary; the same
object feeds the validate command, the API and the page.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from hepstore import patching
from hepstore.jsonio import patchset_digest
from hepstore.schemas import fragment_errors, validator

ERROR, WARNING = "error", "warning"


@dataclass(frozen=True)
class Problem:
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


@dataclass
class Region:
    """One background-only workspace with its signal patches, as found in a submission."""

    name: str
    workspace_file: str
    workspace: dict | None
    patchset_file: str | None = None
    patchset: dict | None = None
    summary: dict = field(default_factory=dict)
    # The files as submitted ("workspace", "patchset" -> path), readable while the
    # submission is open: ingestion stores their bytes as published.
    sources: dict = field(default_factory=dict)
    # The INSPIRE record a HEPData submission.yaml names in its record_ids, if any.
    inspire_id: int | None = None


@dataclass
class Report:
    problems: list[Problem] = field(default_factory=list)
    summary: dict = field(default_factory=dict)

    def add(self, file: str, pointer: str, severity: str, message: str) -> None:
        self.problems.append(Problem(file, pointer, severity, message))

    def error(self, file: str, pointer: str, message: str) -> None:
        self.add(file, pointer, ERROR, message)

    def warning(self, file: str, pointer: str, message: str) -> None:
        self.add(file, pointer, WARNING, message)

    @property
    def valid(self) -> bool:
        return not any(p.severity == ERROR for p in self.problems)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == ERROR]

    def as_dict(self) -> dict:
        return {
            "valid": self.valid,
            "problems": [p.as_dict() for p in self.problems],
            "summary": self.summary,
        }


def _pointer(path) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in path)


# Keys whose value is a list of numbers of any length (yields, counts, uncertainties). The
# schema asks nothing of them but "numbers, at least one"; jsonschema checks that one element
# at a time (a 36 MB workspace of 1.5-million-bin arrays took 90 s), so they are checked here
# in C and shown to jsonschema as their first element. Lists that fail stay whole, so
# jsonschema still reports the offending element at its pointer.
_NUMBER_LIST_KEYS = frozenset({"data", "hi_data", "lo_data"})
_SHORT = 8


def _all_numbers(values: list) -> bool:
    return set(map(type, values)) <= {int, float}


def schema_view(doc, key: str = ""):
    """doc with every long, all-number list under a yield key cut to its first element: what
    the schema says about doc is what it says about this view, pointers included."""
    if isinstance(doc, dict):
        return {k: schema_view(v, k) for k, v in doc.items()}
    if isinstance(doc, list):
        if key in _NUMBER_LIST_KEYS and len(doc) > _SHORT and _all_numbers(doc):
            return doc[:1]
        return [schema_view(v) for v in doc]
    return doc


def check_schema(doc, kind: str, report: Report, file: str, prefix: str = "") -> bool:
    """Schema errors of a workspace or patchset; True when there are none."""
    ok = True
    errors = validator(kind).iter_errors(schema_view(doc))
    for err in sorted(errors, key=lambda e: list(map(str, e.path))):
        ok = False
        message = err.message
        if err.validator == "additionalProperties":
            message = f"unknown key: {message}"
        report.error(file, prefix + _pointer(err.absolute_path), f"{kind} schema: {message}")
    return ok


def _finite(values) -> bool:
    return all(isinstance(v, int | float) and math.isfinite(v) for v in values)


def check_workspace(
    ws: dict,
    report: Report,
    file: str,
    require_poi: bool,
    prefix: str = "",
    context: str = "",
    orphan_observations_are_errors: bool = True,
    supplied_modifiers: frozenset[str] = frozenset(),
) -> None:
    """Consistency checks beyond the schema; ws must already satisfy the schema.

    A patch may remove a channel and leave its observation behind (published patchsets do:
    the fit ignores it), so for patched workspaces that is only a warning. supplied_modifiers
    are modifier names the signal patches bring in (the measurement may set them up)."""
    say = (context + ": ") if context else ""
    observations: dict[str, int] = {}
    for i, obs in enumerate(ws["observations"]):
        if obs["name"] in observations:
            report.error(
                file,
                f"{prefix}/observations/{i}/name",
                f"{say}duplicate observation {obs['name']!r}",
            )
        observations[obs["name"]] = len(obs["data"])
    modifiers: set[str] = set()
    channel_names: set[str] = set()
    for c, channel in enumerate(ws["channels"]):
        cptr = f"{prefix}/channels/{c}"
        cname = channel["name"]
        if cname in channel_names:
            report.error(file, f"{cptr}/name", f"{say}duplicate channel name {cname!r}")
        channel_names.add(cname)
        nbins = observations.get(cname)
        if nbins is None:
            report.error(file, f"{cptr}/name", f"{say}channel {cname!r} has no observation")
        totals = None
        sample_names: set[str] = set()
        for s, sample in enumerate(channel["samples"]):
            sptr = f"{cptr}/samples/{s}"
            if sample["name"] in sample_names:
                report.error(
                    file,
                    f"{sptr}/name",
                    f"{say}duplicate sample {sample['name']!r} in channel {cname!r}",
                )
            sample_names.add(sample["name"])
            data = sample["data"]
            n = nbins if nbins is not None else len(data)
            if len(data) != n:
                report.error(
                    file,
                    f"{sptr}/data",
                    f"{say}sample {sample['name']!r} has "
                    f"{len(data)} bins but channel {cname!r} has {n}",
                )
            elif totals is None:
                totals = list(data)
            else:
                totals = [t + d for t, d in zip(totals, data, strict=True)]
            for b, value in enumerate(data):
                if value < 0:
                    report.warning(
                        file,
                        f"{sptr}/data/{b}",
                        f"{say}negative yield {value} of "
                        f"sample {sample['name']!r} in bin {b} of {cname!r}",
                    )
            for m, mod in enumerate(sample["modifiers"]):
                modifiers.add(mod["name"])
                _check_modifier(mod, n, report, file, f"{sptr}/modifiers/{m}", say, sample["name"])
        if not check_yields_bounded(channel, report, file, cptr, say):
            totals = None
        if totals is not None:
            for b, total in enumerate(totals):
                if total <= 0:
                    report.error(
                        file,
                        f"{cptr}/samples",
                        f"{say}bin {b} of channel {cname!r} "
                        f"has total expected yield {total:g}, which must be positive",
                    )
    for i, obs in enumerate(ws["observations"]):
        _check_numbers_bounded(
            obs["data"],
            report,
            file,
            f"{prefix}/observations/{i}/data",
            f"{say}observed counts of {obs['name']!r}",
        )
        if obs["name"] not in channel_names:
            flag = report.error if orphan_observations_are_errors else report.warning
            flag(
                file,
                f"{prefix}/observations/{i}/name",
                f"{say}observation {obs['name']!r} belongs to no channel",
            )
    for m, meas in enumerate(ws["measurements"]):
        _check_measurement(
            meas,
            modifiers | supplied_modifiers,
            report,
            file,
            f"{prefix}/measurements/{m}",
            say,
            require_poi,
        )


# Largest magnitude of an expected or observed count. The fit squares yields (variances,
# second derivatives), so anything above ~1e154 overflows a double there; no real search
# expects more than ~1e12 events in a bin, so this leaves room without risking infinities.
MAX_YIELD = 1e100


def _check_numbers_bounded(values, report, file, pointer, what) -> bool:
    """False (with an error) when the numbers are not finite or sum above MAX_YIELD in
    magnitude; math.fsum runs in C, so this costs little even on long arrays."""
    try:
        total = math.fsum(map(abs, values))
    except (OverflowError, TypeError, ValueError):
        total = math.inf
    if total <= MAX_YIELD:
        return True
    report.error(
        file,
        pointer,
        f"{what} are not finite or exceed {MAX_YIELD:g} in magnitude: the expected yields "
        "would overflow in the fit",
    )
    return False


def check_yields_bounded(channel: dict, report: Report, file: str, ptr: str, say: str) -> bool:
    """Refuse a channel whose sample yields or yield variations are non-finite or so large
    that the expected yields overflow; True when all are bounded."""
    ok = True
    for s, sample in enumerate(channel["samples"]):
        sptr = f"{ptr}/samples/{s}"
        label = f"{say}yields of sample {sample['name']!r} in {channel['name']!r}"
        ok &= _check_numbers_bounded(sample["data"], report, file, f"{sptr}/data", label)
        for m, mod in enumerate(sample["modifiers"]):
            data = mod["data"]
            if mod["type"] == "histosys":
                for key in ("hi_data", "lo_data"):
                    ok &= _check_numbers_bounded(
                        data[key],
                        report,
                        file,
                        f"{sptr}/modifiers/{m}/data/{key}",
                        f"{say}{key} of histosys {mod['name']!r} on {sample['name']!r}",
                    )
            elif mod["type"] in ("staterror", "shapesys"):
                ok &= _check_numbers_bounded(
                    data,
                    report,
                    file,
                    f"{sptr}/modifiers/{m}/data",
                    f"{say}uncertainties of {mod['type']} {mod['name']!r} on {sample['name']!r}",
                )
    return bool(ok)


def check_parameter_bounds(par: dict, report: Report, file: str, ptr: str, say: str = "") -> bool:
    """Refuse inverted bounds (lower above upper) of one measurement parameter; True when
    every pair is ordered."""
    ok = True
    for b, (lo, hi) in enumerate(par.get("bounds", [])):
        if not lo <= hi:
            ok = False
            report.error(
                file,
                f"{ptr}/bounds/{b}",
                f"{say}bounds of {par['name']!r} are inverted: lower {lo:g} is above upper {hi:g}",
            )
    return ok


def check_duplicate_keys(duplicates: list[tuple[str, str]], report: Report, file: str) -> None:
    """Refuse every key repeated within one JSON object, at its pointer (JSON readers
    disagree on which value wins, so the document is ambiguous)."""
    for pointer, key in duplicates:
        report.error(
            file,
            pointer,
            f"duplicate key {key!r}: it appears more than once in the same object "
            "(JSON keys must be unique; readers disagree on which value wins)",
        )


def _check_modifier(mod, nbins, report, file, ptr, say, sample):
    mtype, data = mod["type"], mod["data"]
    if mtype == "histosys":
        for key in ("hi_data", "lo_data"):
            if len(data[key]) != nbins:
                report.error(
                    file,
                    f"{ptr}/data/{key}",
                    f"{say}histosys {mod['name']!r} on "
                    f"{sample!r} has {len(data[key])} bins in {key}, the sample {nbins}",
                )
    elif mtype in ("staterror", "shapesys"):
        if len(data) != nbins:
            report.error(
                file,
                f"{ptr}/data",
                f"{say}{mtype} {mod['name']!r} on {sample!r} has "
                f"{len(data)} bins, the sample {nbins}",
            )
        if any(v < 0 for v in data):
            report.error(
                file, f"{ptr}/data", f"{say}{mtype} {mod['name']!r} has a negative uncertainty"
            )
    elif mtype == "normsys" and (data["hi"] <= 0 or data["lo"] <= 0):
        report.error(
            file,
            f"{ptr}/data",
            f"{say}normsys {mod['name']!r} on {sample!r} needs positive hi and lo factors",
        )


def _check_measurement(meas, modifiers, report, file, ptr, say, require_poi):
    config = meas["config"]
    if require_poi and config["poi"] not in modifiers:
        report.error(
            file,
            f"{ptr}/config/poi",
            f"{say}the parameter of interest "
            f"{config['poi']!r} of measurement {meas['name']!r} is not a modifier",
        )
    for p, par in enumerate(config["parameters"]):
        pptr = f"{ptr}/config/parameters/{p}"
        if par["name"] not in modifiers:
            report.warning(
                file,
                f"{pptr}/name",
                f"{say}measurement parameter {par['name']!r} names no modifier",
            )
        bounds = par.get("bounds", [])
        check_parameter_bounds(par, report, file, pptr, say)
        for i, init in enumerate(par.get("inits", [])):
            if i < len(bounds) and not bounds[i][0] <= init <= bounds[i][1]:
                report.error(
                    file,
                    f"{pptr}/inits/{i}",
                    f"{say}initial value {init:g} of "
                    f"{par['name']!r} lies outside its bounds {bounds[i]}",
                )


def check_patchset(
    ps: dict, workspace: dict | None, report: Report, file: str, workspace_file: str
) -> list[dict]:
    """Patchset checks; returns the patched workspaces that are valid (for the summary)."""
    # The specification allows further metadata keys: they are not warned about.
    meta = ps["metadata"]
    labels = meta["labels"]
    names: dict[str, int] = {}
    values: dict[tuple, str] = {}
    for i, patch in enumerate(ps["patches"]):
        pm = patch["metadata"]
        if pm["name"] in names:
            report.error(
                file, f"/patches/{i}/metadata/name", f"duplicate patch name {pm['name']!r}"
            )
        names[pm["name"]] = i
        if len(pm["values"]) != len(labels):
            report.error(
                file,
                f"/patches/{i}/metadata/values",
                f"patch {pm['name']!r} has "
                f"{len(pm['values'])} values for {len(labels)} labels {labels}",
            )
        key = tuple(pm["values"])
        if key in values:
            report.error(
                file,
                f"/patches/{i}/metadata/values",
                f"patch {pm['name']!r} has the same values {list(key)} as patch {values[key]!r}",
            )
        values.setdefault(key, pm["name"])
    if workspace is None:
        return []
    digests = meta["digests"]
    if "sha256" in digests:
        actual = patchset_digest(workspace)
        if digests["sha256"].lower() != actual:
            report.error(
                file,
                "/metadata/digests/sha256",
                "the digest does not match the "
                f"background-only workspace {workspace_file} (it has sha256 {actual})",
            )
    patched = []
    buildable = _Buildable(report, file)
    for i, patch in enumerate(ps["patches"]):
        name = patch["metadata"]["name"]
        if _empty_patch(patch, report, file, i, name):
            continue
        try:
            result = patching.apply(workspace, patch["patch"])
        except patching.PatchError as exc:
            report.error(
                file, f"/patches/{i}/patch/{exc.index}", f"patch {name!r} does not apply: {exc}"
            )
            continue
        before = len(report.errors)
        _check_patched(result, patch["patch"], report, file, i, name)
        if len(report.errors) == before and buildable.check(result, i, name):
            patched.append(result)
    buildable.report_all()
    return patched


# Where an operation's path points, and which part of the workspace schema its value must meet.
_OP_TARGETS = [
    (re.compile(r"^/channels/(\d+|-)$"), "channel"),
    (re.compile(r"^/channels/\d+/samples/(\d+|-)$"), "sample"),
    (re.compile(r"^/channels/\d+/samples/\d+/modifiers/(\d+|-)$"), "modifier"),
    (re.compile(r"^/channels/\d+/samples/\d+/data$"), "number_list"),
    (re.compile(r"^/observations/(\d+|-)$"), "observation"),
]


def _check_patched(ws, ops, report, file, index, name):
    """Schema-check what each operation brings in, then the patched workspace's consistency.

    Validating only the inserted values keeps this fast on workspaces of many megabytes; an
    operation whose target is not recognised falls back to validating the whole result."""
    prefix = f"/patches/{index}/patch"
    context = f"workspace patched by {name!r}"
    whole = False
    for k, op in enumerate(ops):
        if op["op"] in ("remove", "move", "copy", "test"):
            continue
        kind = next((kind for rx, kind in _OP_TARGETS if rx.match(op["path"])), None)
        if kind is None:
            whole = True
            continue
        for err in fragment_errors(kind, op["value"]):
            report.error(
                file,
                f"{prefix}/{k}/value{_pointer(err.absolute_path)}",
                f"{context}: {kind} schema: {err.message}",
            )
            whole = None
    if whole is None:
        return
    if whole and not _schema_ok_quiet(ws, "workspace", report, file, prefix, context):
        return
    check_workspace(
        ws,
        _PatchedReport(report, file, prefix),
        file,
        True,
        "",
        context,
        orphan_observations_are_errors=False,
    )


def _schema_ok_quiet(ws, kind, report, file, prefix, context):
    errs = list(validator(kind).iter_errors(schema_view(ws)))
    for err in errs:
        report.error(
            file,
            prefix,
            f"{context}: {kind} schema at {_pointer(err.absolute_path)}: {err.message}",
        )
    return not errs


class _PatchedReport:
    """Problems inside a patched workspace are reported against the patch, with the
    location inside the patched workspace in the message; warnings the background-only
    workspace already has are not repeated for every patch."""

    def __init__(self, report: Report, file: str, prefix: str):
        self.report, self.file, self.prefix = report, file, prefix

    def error(self, file, pointer, message):
        self.report.error(self.file, self.prefix, f"{message} (at {pointer or '/'})")

    def warning(self, file, pointer, message):
        pass


def summarise(ws: dict, patchset: dict | None, patched: list[dict]) -> dict:
    """Counts for people: channels, bins, samples, modifiers by type, parameters, POI, points."""
    from reinterpret.fitter import FitterError
    from reinterpret.fitter.spec import read_workspace

    model_ws = patched[0] if patched else ws
    modifiers: dict[str, set] = {}
    samples = set()
    for channel in model_ws["channels"]:
        for sample in channel["samples"]:
            samples.add((channel["name"], sample["name"]))
            for mod in sample["modifiers"]:
                modifiers.setdefault(mod["type"], set()).add(mod["name"])
    try:
        spec = read_workspace(model_ws)
        parameters = sum(p.size for p in spec.parameters.values())
    except (FitterError, KeyError, TypeError, ValueError):
        parameters = None
    meas = model_ws["measurements"][0]["config"]
    summary = {
        "channels": len(ws["channels"]),
        "bins": sum(len(o["data"]) for o in ws["observations"]),
        "channel_bins": {o["name"]: len(o["data"]) for o in ws["observations"]},
        "samples": len(samples),
        "modifiers_by_type": {t: len(n) for t, n in sorted(modifiers.items())},
        "parameters": parameters,
        "poi": meas["poi"],
        "measurements": [m["name"] for m in ws["measurements"]],
        "signal_points": len(patchset["patches"]) if patchset else 0,
        "labels": patchset["metadata"]["labels"] if patchset else [],
    }
    return summary


def validate_region(region: Region, report: Report) -> None:
    """All checks of one region; fills region.summary when the workspace is usable."""
    ws = region.workspace
    ws_ok = ws is not None and check_schema(ws, "workspace", report, region.workspace_file)
    ps = region.patchset
    if ws_ok:
        before = len(report.errors)
        check_workspace(
            ws,
            report,
            region.workspace_file,
            require_poi=ps is None,
            supplied_modifiers=patch_modifier_names(ps),
        )
        if ps is None and len(report.errors) == before:
            # A workspace without patches is a model in itself: it must be one the fitter builds.
            buildable = _Buildable(report, region.workspace_file)
            buildable.check(ws, None, None)
            buildable.report_all()
    patched: list[dict] = []
    if ps is not None and check_schema(ps, "patchset", report, region.patchset_file):
        patched = check_patchset(
            ps, ws if ws_ok else None, report, region.patchset_file, region.workspace_file
        )
    if ws_ok:
        try:
            region.summary = summarise(ws, ps, patched)
        except (KeyError, IndexError, TypeError):
            region.summary = {}


# ------------------------------------------------------- what the fitter can evaluate (issue 15)


def patch_modifier_names(patchset) -> frozenset[str]:
    """Names of the modifiers the patches of a patchset bring in (any shape of operation
    value: a channel, a sample, a modifier or a list of them); empty without a patchset."""
    names: set[str] = set()

    def walk(value) -> None:
        if isinstance(value, dict):
            if isinstance(value.get("name"), str) and isinstance(value.get("type"), str):
                names.add(value["name"])
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    patches = patchset.get("patches") if isinstance(patchset, dict) else None
    for patch in patches if isinstance(patches, list) else []:
        ops = patch.get("patch") if isinstance(patch, dict) else None
        for op in ops if isinstance(ops, list) else []:
            if isinstance(op, dict):
                walk(op.get("value"))
    return frozenset(names)


def _empty_patch(patch: dict, report: Report, file: str, index: int, name: str) -> bool:
    """An empty patch (the schema allows it; published patchsets have them) is accepted with a
    warning: its point is the background-only model, with no signal to evaluate."""
    if patch["patch"]:
        return False
    report.warning(
        file,
        f"/patches/{index}/patch",
        f"patch {name!r} is empty: its point is the background-only workspace, with no signal; "
        "it is kept, but no CLs can be computed for it",
    )
    return True


class _Buildable:
    """Asks the fitter's own spec reader whether each (patched) workspace can be built into a
    model, so that what validates is what can be evaluated. One cause shared by many patches
    (say the measurement gives the lumi parameter no auxdata) is reported once, naming how
    many patches it stops."""

    def __init__(self, report: Report, file: str):
        self.report, self.file = report, file
        self.cache: dict = {}  # the reader's cache: samples shared by the patches read once
        self.failures: dict[tuple[str, str], list[tuple[int | None, str | None]]] = {}

    def check(self, ws: dict, index: int | None, name: str | None) -> bool:
        from reinterpret.fitter import ModelError
        from reinterpret.fitter.spec import read_workspace

        try:
            read_workspace(ws, None, self.cache, check_data=True)
        except ModelError as exc:
            self.failures.setdefault((str(exc), exc.pointer or ""), []).append((index, name))
            return False
        return True

    def report_all(self) -> None:
        for (message, inner), where in self.failures.items():
            index, name = where[0]
            if index is None:
                self.report.error(
                    self.file, inner, f"the fitter cannot build this workspace: {message}"
                )
                continue
            others = f" (and {len(where) - 1} other patches)" if len(where) > 1 else ""
            self.report.error(
                self.file,
                f"/patches/{index}/patch",
                f"the workspace patched by {name!r}{others} cannot be built into a model: "
                f"{message} (at {inner or '/'})",
            )
