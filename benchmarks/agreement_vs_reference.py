"""Agreement of the fitter with the pyhf 0.7.6 reference numbers in ../shared/likelihoods:
per analysis, the worst |dCLs| (observed and each expected value), the worst relative upper
limit difference, and the largest 2*NLL excess over pyhf's (negative = we found lower).

    python benchmarks/agreement_vs_reference.py
"""

from __future__ import annotations

import math

from _common import ANALYSES, load


def main() -> None:
    from reinterpret import services

    print(
        f"{'analysis':<9} {'patches':>7} {'worst |dCLs|':>12} {'(patch)':<24} "
        f"{'limits':>6} {'worst d(mu_up)/mu_up':>20} {'max 2NLL - pyhf':>16}"
    )
    for analysis in ANALYSES:
        ref = load(analysis, "pyhf_reference.json")["patches"]
        points_ref = [p for p in ref if p.get("cls_obs") is not None]
        bkg, ps = load(analysis, "BkgOnly.json"), load(analysis, "patchset.json")
        points = services.patch_points(bkg, ps, [p["name"] for p in points_ref])
        results = services.evaluate(points, services.Settings(upper_limit=True))
        worst, worst_name, worst_lim, nll_excess, n_lim = 0.0, "", 0.0, -1e9, 0
        for r, p in zip(results, points_ref, strict=True):
            diffs = [_diff(r["cls_obs"], p["cls_obs"])]
            diffs += [_diff(a, b) for a, b in zip(r["cls_exp"], p["cls_exp"], strict=True)]
            if max(diffs) > worst:
                worst, worst_name = max(diffs), p["name"]
            nll_excess = max(nll_excess, _diff(r["twice_nll"], p["twice_nll"], signed=True))
            if p.get("mu_up_obs") is not None:
                n_lim += 1
                pairs = [
                    (r["mu_up_obs"], p["mu_up_obs"]),
                    *zip(r["mu_up_exp"], p["mu_up_exp"], strict=True),
                ]
                worst_lim = max(worst_lim, *(_diff(a, b) / abs(b) for a, b in pairs))
        print(
            f"{analysis:<9} {len(points_ref):>7} {worst:>12.2e} {worst_name:<24} "
            f"{n_lim:>6} {worst_lim:>20.2e} {nll_excess:>16.2e}"
        )


def _diff(ours, ref, signed: bool = False) -> float:
    """|ours - ref| (ours - ref if signed); infinite where ours is null (see its reason)."""
    if ours is None:
        return math.inf
    return ours - ref if signed else abs(ours - ref)


if __name__ == "__main__":
    main()
