"""Does a combined whole-grid scan cost about the sum of its members' scans?

Regions B and C of the ATLAS sbottom search (../shared/likelihoods/sbottom-B, sbottom-C),
combined as the reference test combines them (region C's CRtt_cuts/VRtt_cuts renamed, their
staterrors decorrelated, `lumi` correlated). In one run, on one thread, each timed as a
scan does it (patch, compile, CLs obs + expected band, in the service's memory-bounded
chunks; no upper limits):

    B alone: every point of B's patchset
    C alone: every point of C's patchset
    B+C:     every combined point (built with reinterpret.combinations), the combination
             itself (renaming, measurement merge) included in the time

and prints seconds, ms per point, and the ratio combined / (B + C). Median of --repeat runs.
Do not run it on a loaded machine (check `uptime`): the ratio is only meaningful when the
three scans see the same machine.

    .venv/bin/python benchmarks/combination_scan.py [--repeat 3] [--points N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

from _common import SHARED, load, single_threaded

single_threaded()
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hepstore.settings")

import django  # noqa: E402

django.setup()

from reinterpret import services  # noqa: E402
from reinterpret.combinations import (  # noqa: E402
    MemberSignals,
    combined_grid,
    evaluation_points,
)
from reinterpret.fitter.combine import Combiner, Member, Policy, Rename  # noqa: E402

POLICY = Policy(
    decorrelate=("staterror_CRtt_cuts", "staterror_VRtt_cuts"),
    renames=(Rename("CRtt_cuts", "CRtt_cuts_C", "C"), Rename("VRtt_cuts", "VRtt_cuts_C", "C")),
)


def scan_alone(bkg: dict, patchset: dict, names: list[str], settings) -> float:
    t0 = time.perf_counter()
    points = services.patch_points(bkg, patchset, names)
    services.evaluate(points, settings)
    return time.perf_counter() - t0


def scan_combined(members, signals, names, settings) -> float:
    t0 = time.perf_counter()
    combiner = Combiner(members, POLICY)
    _, points, _ = combined_grid(signals)
    chosen = [p for p in points if p.name in names]
    ready = evaluation_points(combiner, {s.tag: s for s in signals}, chosen)
    services.evaluate(ready, settings)
    return time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--points", type=int, default=0, help="first N common points only")
    args = parser.parse_args()
    if not (SHARED / "sbottom-B").exists():
        print("needs ../shared/likelihoods/sbottom-B and sbottom-C", file=sys.stderr)
        return 2
    bkg = {t: load(f, "BkgOnly.json") for t, f in (("B", "sbottom-B"), ("C", "sbottom-C"))}
    ps = {t: load(f, "patchset.json") for t, f in (("B", "sbottom-B"), ("C", "sbottom-C"))}
    signals = [MemberSignals.from_patchset(t, ps[t]) for t in ("B", "C")]
    members = [Member(t, bkg[t]) for t in ("B", "C")]
    _, combined, _ = combined_grid(signals)
    names = {t: [p["metadata"]["name"] for p in ps[t]["patches"]] for t in ("B", "C")}
    combined_names = {p.name for p in combined}
    if args.points:
        common = [n for n in names["B"] if n in set(names["C"])][: args.points]
        names = {"B": common, "C": common}
        combined_names = set(common)
    settings = services.Settings(upper_limit=False)
    times = {"B": [], "C": [], "B+C": []}
    for _ in range(args.repeat):
        times["B"].append(scan_alone(bkg["B"], ps["B"], names["B"], settings))
        times["C"].append(scan_alone(bkg["C"], ps["C"], names["C"], settings))
        times["B+C"].append(scan_combined(members, signals, combined_names, settings))
    count = {"B": len(names["B"]), "C": len(names["C"]), "B+C": len(combined_names)}
    median = {k: statistics.median(v) for k, v in times.items()}
    print(f"{'scan':<6} {'points':>6} {'seconds':>9} {'ms/point':>9}   (median of {args.repeat})")
    for key in ("B", "C", "B+C"):
        print(
            f"{key:<6} {count[key]:>6} {median[key]:>9.2f} {1e3 * median[key] / count[key]:>9.1f}"
        )
    ratio = median["B+C"] / (median["B"] + median["C"])
    print(f"combined / (B + C) = {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
