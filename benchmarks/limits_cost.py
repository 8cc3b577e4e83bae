"""Cost of upper limits over whole real patchsets: seconds per point for CLs (observed and
expected band) alone and for CLs with the six upper limits, in one run, one thread, median of
M fresh runs each; the ratio is what the issue-15 bar (at most 2x) is about. Also counts the
fixed-POI fits and likelihood evaluations (with Hessian; and apart those by value and gradient
alone, the fits' last checks) the limit search makes per point.

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

    counts = {"fits": 0, "rows": 0, "light": 0, "inside": False}
    evaluate, solve = ModelBatch.evaluate, limits._evaluate

    def counted_evaluate(self, theta, *rest, **kw):
        if counts["inside"]:
            counts["rows" if kw.get("hessian", True) else "light"] += theta.shape[0]
        return evaluate(self, theta, *rest, **kw)

    def counted_solve(model, fits, options, curves, roots, *rest):
        counts["fits"] += roots.size + int(curves.observed[roots].sum())
        counts["inside"] = True
        try:
            return solve(model, fits, options, curves, roots, *rest)
        finally:
            counts["inside"] = False

    ModelBatch.evaluate, limits._evaluate = counted_evaluate, counted_solve
    kernel.warm_up()  # the compiled kernel's one-time load is no part of either time
    print(
        f"{'analysis':9s} {'points':>6s} {'CLs ms/pt':>10s} {'+limits ms/pt':>14s} "
        f"{'ratio':>6s} {'limit fits/pt':>14s} {'limit evals/pt':>15s} {'+ checks/pt':>11s} "
        f"{'null limits':>11s}"
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
            t0 = time.perf_counter()
            results = services.evaluate(points, services.Settings(upper_limit=True))
            with_limits.append(time.perf_counter() - t0)
        a, b = statistics.median(plain), statistics.median(with_limits)
        nulls = sum(v is None for r in results for v in (r["mu_up_obs"], *r["mu_up_exp"]))
        print(
            f"{analysis:9s} {n:6d} {a / n * 1e3:10.2f} {b / n * 1e3:14.2f} {b / a:6.2f} "
            f"{counts['fits'] / n:14.1f} {counts['rows'] / n:15.1f} {counts['light'] / n:11.1f} "
            f"{nulls:11d}"
        )


if __name__ == "__main__":
    main()
