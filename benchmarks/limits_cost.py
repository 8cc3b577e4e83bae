"""Cost of upper limits over whole real patchsets: seconds per point for CLs (observed and
expected band) alone and for CLs with the six upper limits, in one run, one thread, median of
M fresh runs each; the ratio is what the issue-15 bar (at most 2x) is about. Also counts the
fixed-POI fits and likelihood evaluations (with Hessian; and apart those by value and gradient
alone, the fits' last checks) the limit search makes per point, and of its fits those started
from the signal-free optimum (the check that a root's warm-started fits did not follow a
valley that is not the lowest one) apart: how many per point, and the Newton iterations per
fit of either kind (a fit costs about one full evaluation more than its iterations).

    python benchmarks/limits_cost.py [--repeat 3] [--analyses sbottom staus 1lbb]
"""

from __future__ import annotations

import argparse
import statistics
import time

from _common import load, single_threaded

single_threaded()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--analyses", nargs="+", default=["sbottom", "staus", "1lbb"])
    args = parser.parse_args()

    from reinterpret import services
    from reinterpret.fitter import kernel, limits
    from reinterpret.fitter.model import ModelBatch

    counts = {"fits": 0, "rows": 0, "light": 0, "inside": False, "first": False}
    counts.update(warm=0, warm_iterations=0, cold=0, cold_iterations=0)
    evaluate, solve, minimize = ModelBatch.evaluate, limits._evaluate, limits.minimize
    check = limits._check

    def counted_evaluate(self, theta, *rest, **kw):
        if counts["inside"]:
            counts["rows" if kw.get("hessian", True) else "light"] += theta.shape[0]
        return evaluate(self, theta, *rest, **kw)

    def counted_solve(model, fits, options, curves, roots, x, warm, both):
        obs = curves.observed[roots]
        counts["fits"] += roots.size + int(obs.sum())
        counts["inside"] = counts["first"] = True
        try:
            return solve(model, fits, options, curves, roots, x, warm, both)
        finally:
            counts["inside"] = False

    def counted_check(model, fits, options, curves, roots, x, warm):
        # Fits from the signal-free optimum at a root's last evaluation, after it: counted
        # with the others of their kind (below), and their evaluations with the search's.
        counts["inside"] = True
        try:
            return check(model, fits, options, curves, roots, x, warm)
        finally:
            counts["inside"] = False

    def counted_minimize(model, rows, *rest, **kw):
        # limits._evaluate: the round's first call fits the warm starts, the one given a
        # minimum to beat those from the signal-free optimum (a second call without is the
        # warm fits that failed, started again); limits._check's call is given one too.
        out = minimize(model, rows, *rest, **kw)
        kind = "cold" if kw.get("beat") is not None else "warm" if counts["first"] else None
        counts["first"] = False
        if kind is not None:
            counts[kind] += rows.size
            counts[f"{kind}_iterations"] += int(out.iterations.sum())
        return out

    ModelBatch.evaluate, limits._evaluate = counted_evaluate, counted_solve
    limits._check = counted_check
    limits.minimize = counted_minimize
    kernel.warm_up()  # the compiled kernel's one-time load is no part of either time
    print(
        f"{'analysis':9s} {'points':>6s} {'CLs ms/pt':>10s} {'+limits ms/pt':>14s} "
        f"{'ratio':>6s} {'limit fits/pt':>14s} {'limit evals/pt':>15s} {'+ checks/pt':>11s} "
        f"{'null limits':>11s} {'signal-free-start fits/pt':>25s} {'iterations warm/cold':>20s}"
    )
    for analysis in args.analyses:
        points = services.patch_points(
            load(analysis, "BkgOnly.json"), load(analysis, "patchset.json")
        )
        n = len(points)
        plain, with_limits = [], []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            services.evaluate(points, services.Settings())
            plain.append(time.perf_counter() - t0)
            counts.update(fits=0, rows=0, light=0)
            counts.update(warm=0, warm_iterations=0, cold=0, cold_iterations=0)
            t0 = time.perf_counter()
            results = services.evaluate(points, services.Settings(upper_limit=True))
            with_limits.append(time.perf_counter() - t0)
        a, b = statistics.median(plain), statistics.median(with_limits)
        nulls = sum(v is None for r in results for v in (r["mu_up_obs"], *r["mu_up_exp"]))
        print(
            f"{analysis:9s} {n:6d} {a / n * 1e3:10.2f} {b / n * 1e3:14.2f} {b / a:6.2f} "
            f"{counts['fits'] / n:14.1f} {counts['rows'] / n:15.1f} {counts['light'] / n:11.1f} "
            f"{nulls:11d} {counts['cold'] / n:25.1f} "
            f"{counts['warm_iterations'] / max(counts['warm'], 1):9.2f} / "
            f"{counts['cold_iterations'] / max(counts['cold'], 1):<8.2f}"
        )


if __name__ == "__main__":
    main()
