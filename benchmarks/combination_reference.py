"""Reference numbers for a combination, computed ONCE with pyhf 0.7.6 (the test-only reference
implementation) and stored in tests/data/combination_reference.json.

Two real likelihoods of one search, regions B and C of the ATLAS sbottom search
(../shared/likelihoods/sbottom-B, sbottom-C), combined by pyhf itself:

    wsB = pyhf.Workspace(B patched with point P).rename(modifiers=...)
    wsC = pyhf.Workspace(C patched with point P).rename(channels=..., modifiers=...)
    combined = pyhf.Workspace.combine(wsB, wsC, join="outer")
    pyhf.infer.hypotest(1.0, data, model, test_stat="qtilde", return_expected_set=True)
    pyhf.infer.intervals.upper_limits.upper_limit(data, model, level=0.05)   (some points)

HistFactory JSON 1.0.0 (pyhf's schema) requires a `lumi` modifier to be named "lumi", so a
decorrelated luminosity cannot stay a lumi modifier: each region's copy becomes a normsys
modifier lumi_B / lumi_C with hi = 1 + sigma, lo = 1 - sigma (sigma from that region's
measurement), its lumi measurement settings dropped. This script does that by hand on each
region's spec before pyhf's rename and combine; `manage.py combine --decorrelate lumi` does
the same.

The two regions share two channel names (CRtt_cuts, VRtt_cuts): region C's are renamed with
a "_C" suffix, and their per-channel staterror parameters are decorrelated (one copy per
region), as `manage.py combine` is told to do in the test. Two policies: `lumi` correlated
(one parameter, pyhf's convention for one name) and decorrelated (lumi_B, lumi_C). A point
only one region has contributes that region's signal and the other's background only.

Run from the project root (takes minutes on one core):
    .venv/bin/python benchmarks/combination_reference.py
"""

from __future__ import annotations

import copy
import json
import sys
import time
from pathlib import Path

import jsonpatch
import pyhf

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "likelihoods"
OUT = ROOT / "tests" / "data" / "combination_reference.json"

MEMBERS = ("sbottom-B", "sbottom-C")
TAGS = ("B", "C")
CHANNEL_RENAMES = {"C": {"CRtt_cuts": "CRtt_cuts_C", "VRtt_cuts": "VRtt_cuts_C"}}
STATERRORS = ("staterror_CRtt_cuts", "staterror_VRtt_cuts")
POLICIES = {
    "lumi_correlated": {"decorrelate": list(STATERRORS)},
    "lumi_decorrelated": {"decorrelate": [*STATERRORS, "lumi"]},
}
# Points in both regions (CLs from ~0.02 to ~0.1), and points only one region has.
POINTS = (
    "sbottom_1300_1150_60",
    "sbottom_1200_750_60",
    "sbottom_900_830_700",
    "sbottom_1000_550_60",  # region B only
    "sbottom_1500_1495_60",  # region C only
)
LIMIT_POINTS = ("sbottom_1300_1150_60", "sbottom_1500_1495_60")


def load(*parts):
    with open(SHARED.joinpath(*parts), encoding="utf-8") as fh:
        return json.load(fh)


def member_workspace(folder: str, name: str) -> tuple[dict, str | None]:
    bkg = load(folder, "BkgOnly.json")
    patches = {p["metadata"]["name"]: p for p in load(folder, "patchset.json")["patches"]}
    if name not in patches:
        return bkg, None
    return jsonpatch.apply_patch(bkg, patches[name]["patch"]), name


def lumi_as_normsys(spec: dict, tag: str) -> dict:
    """The spec with its lumi modifier turned into normsys lumi_TAG (see the docstring)."""
    spec = copy.deepcopy(spec)
    config = spec["measurements"][0]["config"]
    (setting,) = [p for p in config["parameters"] if p["name"] == "lumi"]
    sigma = setting["sigmas"][0]
    config["parameters"] = [p for p in config["parameters"] if p["name"] != "lumi"]
    for channel in spec["channels"]:
        for sample in channel["samples"]:
            sample["modifiers"] = [
                {
                    "name": f"lumi_{tag}",
                    "type": "normsys",
                    "data": {"hi": 1 + sigma, "lo": 1 - sigma},
                }
                if m["type"] == "lumi"
                else m
                for m in sample["modifiers"]
            ]
    return spec


def pyhf_combined(name: str, decorrelate: list[str]) -> tuple[pyhf.Workspace, dict]:
    parts, sources = [], {}
    for folder, tag in zip(MEMBERS, TAGS, strict=True):
        spec, source = member_workspace(folder, name)
        sources[tag] = source
        if "lumi" in decorrelate:
            spec = lumi_as_normsys(spec, tag)
        ws = pyhf.Workspace(spec)
        present = {
            m["name"] for c in spec["channels"] for s in c["samples"] for m in s["modifiers"]
        }
        modifiers = {n: f"{n}_{tag}" for n in decorrelate if n in present and n != "lumi"}
        parts.append(ws.rename(modifiers=modifiers, channels=CHANNEL_RENAMES.get(tag, {})))
    return pyhf.Workspace.combine(parts[0], parts[1], join="outer"), sources


def write(out: dict, previous: dict) -> None:
    """Save after every point (a long run can be resumed); policies not reached yet keep
    what an earlier run computed."""
    merged = {**out, "results": {**previous["results"], **out["results"]}}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(merged, indent=1) + "\n", encoding="utf-8")


def main() -> int:
    pyhf.set_backend("numpy")
    out = {
        "pyhf_version": pyhf.__version__,
        "members": dict(zip(TAGS, MEMBERS, strict=True)),
        "channel_renames": CHANNEL_RENAMES,
        "policies": POLICIES,
        "procedure": __doc__.strip(),
        "results": {},
    }
    previous = json.loads(OUT.read_text()) if OUT.exists() else {"results": {}}
    for policy, config in POLICIES.items():
        rows = out["results"][policy] = []
        done = {r["name"]: r for r in previous["results"].get(policy, [])}
        for name in POINTS:
            if name in done and (name not in LIMIT_POINTS or "mu_up_obs" in done[name]):
                rows.append(done[name])  # resumed: computed by an earlier run
                continue
            ws, sources = pyhf_combined(name, config["decorrelate"])
            model = ws.model()
            data = ws.data(model)
            t0 = time.process_time()
            obs, exp = pyhf.infer.hypotest(
                1.0, data, model, test_stat="qtilde", return_expected_set=True
            )
            row = {
                "name": name,
                "members": sources,
                "cls_obs": float(obs),
                "cls_exp": [float(x) for x in exp],
                "parameters": sorted(model.config.parameters),
                "channels": sorted(model.config.channels),
                "hypotest_cpu_seconds": round(time.process_time() - t0, 3),
            }
            if name in LIMIT_POINTS:
                t0 = time.process_time()
                up_obs, up_exp = pyhf.infer.intervals.upper_limits.upper_limit(
                    data, model, level=0.05
                )
                row["mu_up_obs"] = float(up_obs)
                row["mu_up_exp"] = [float(x) for x in up_exp]
                row["upper_limit_cpu_seconds"] = round(time.process_time() - t0, 3)
            print(policy, row["name"], row["cls_obs"], row.get("mu_up_obs"), file=sys.stderr)
            rows.append(row)
            write(out, previous)
    print(f"wrote {OUT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
