"""Where the time of a whole-patchset CLs run goes: exclusive wall time per stage of
services.evaluate (each stage's own time, without the stages it calls), one thread, the
fastest of --repeat runs in one process.

    python benchmarks/stage_profile.py [--repeat 3] [--analyses sbottom staus 1lbb]

The stages are the functions wrapped below (compilation, the fits' stages, the batched
evaluations, the Newton step's Jacobi scaling and Cholesky solves, the mirrored-start probes,
...); "(rest)" is what none of them covers. Wrapping costs a few microseconds per call, so
the total is a little above an unwrapped run's.
"""

from __future__ import annotations

import argparse
import time

from _common import ANALYSES, load, single_threaded

single_threaded()

from reinterpret import services  # noqa: E402
from reinterpret.fitter import batch, infer, kernel, optimize  # noqa: E402
from reinterpret.fitter.model import ModelBatch  # noqa: E402

_stack: list[list] = []
_own: dict[str, float] = {}
_calls: dict[str, int] = {}


def _wrap(owner, name: str, label: str) -> None:
    """Replace owner.name by a wrapper adding its exclusive time to _own[label]."""
    inner = getattr(owner, name)

    def timed(*args, **kwargs):
        start = time.perf_counter()
        _stack.append([label, 0.0])
        try:
            return inner(*args, **kwargs)
        finally:
            _, children = _stack.pop()
            spent = time.perf_counter() - start
            _own[label] = _own.get(label, 0.0) + spent - children
            _calls[label] = _calls.get(label, 0) + 1
            if _stack:
                _stack[-1][1] += spent

    setattr(owner, name, timed)


STAGES = (
    (batch, "compile_points", "compiling the batch"),
    (infer, "_signal_free_fits", "signal-free fits (own time)"),
    (infer, "minimize", "global, fixed-POI, Asimov fits (own time)"),
    (infer.starts, "try_flips", "mirrored starts (own time)"),
    (infer, "_generating_point", "Asimov global fit (own time)"),
    (infer, "_poi_errors", "mu_hat errors"),
    (infer, "_assemble", "results"),
    (infer.asymptotics, "observed_and_expected", "asymptotic CLs"),
    (ModelBatch, "evaluate", "evaluations (value, gradient, Hessian)"),
    (ModelBatch, "nll_moved", "mirrored-start probes"),
    (optimize, "_newton_step", "Newton step (own time)"),
    (optimize, "_scaled", "Jacobi scaling"),
    (optimize, "_cholesky_solve", "Cholesky factorisations and solves"),
    (optimize, "_chord_check", "chord checks (own time)"),
    (optimize, "_line_search", "line searches (own time)"),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--analyses", nargs="*", default=list(ANALYSES[:3]))
    args = parser.parse_args()
    for owner, name, label in STAGES:
        _wrap(owner, name, label)
    kernel.warm_up()
    for analysis in args.analyses:
        points = services.patch_points(
            load(analysis, "BkgOnly.json"), load(analysis, "patchset.json")
        )
        best = None
        for _ in range(args.repeat):
            _own.clear()
            _calls.clear()
            start = time.perf_counter()
            services.evaluate(points, services.Settings())
            total = time.perf_counter() - start
            if best is None or total < best[0]:
                best = (total, dict(_own), dict(_calls))
        total, own, calls = best
        n = len(points)
        print(f"{analysis}: {n} points, {total / n * 1e3:.2f} ms per point")
        for label, seconds in sorted(own.items(), key=lambda item: -item[1]):
            print(
                f"  {label:<44} {seconds / n * 1e3:7.3f} ms/pt {100 * seconds / total:5.1f} %"
                f"  ({calls[label]} calls)"
            )
        rest = total - sum(own.values())
        print(f"  {'(rest)':<44} {rest / n * 1e3:7.3f} ms/pt {100 * rest / total:5.1f} %")


if __name__ == "__main__":
    main()
