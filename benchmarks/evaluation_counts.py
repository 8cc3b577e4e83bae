"""How far the batched engine is from its floor: full likelihood+gradient+Hessian evaluations
per signal point, their cost per row, and the share of wall time they take, per analysis; also
the evaluations of value and gradient alone (the fits' last checks, optimize.CHORD_DECREMENT)
and of the value alone (line searches, mirrored-start probes).

    python benchmarks/evaluation_counts.py
"""

from __future__ import annotations

import time

from _common import ANALYSES, load, single_threaded

single_threaded()


class Counter:
    """Wraps ModelBatch.evaluate / ModelBatch.nll to count rows and time (evaluations
    without the Hessian counted apart, in light_rows and light_seconds)."""

    def __init__(self, model_class, name: str):
        self.model_class, self.name = model_class, name
        self.original = getattr(model_class, name)
        self.calls = self.rows = self.light_rows = 0
        self.seconds = self.light_seconds = 0.0

    def __enter__(self):
        original = self.original

        def wrapped(model, theta, rows, *args, **kwargs):
            t0 = time.perf_counter()
            out = original(model, theta, rows, *args, **kwargs)
            if kwargs.get("hessian", True):
                self.seconds += time.perf_counter() - t0
                self.calls += 1
                self.rows += theta.shape[0]
            else:
                self.light_seconds += time.perf_counter() - t0
                self.light_rows += theta.shape[0]
            return out

        setattr(self.model_class, self.name, wrapped)
        return self

    def __exit__(self, *exc):
        setattr(self.model_class, self.name, self.original)


def main() -> None:
    from reinterpret import services
    from reinterpret.fitter import kernel
    from reinterpret.fitter.model import ModelBatch

    kernel.warm_up()  # its one-time load is no part of the times

    for analysis in ANALYSES:
        points = services.patch_points(
            load(analysis, "BkgOnly.json"), load(analysis, "patchset.json")
        )
        with Counter(ModelBatch, "evaluate") as full, Counter(ModelBatch, "nll") as value:
            t0 = time.perf_counter()
            services.evaluate(points, services.Settings())
            total = time.perf_counter() - t0
        n = len(points)
        print(
            f"{analysis}: {n} points, {total / n * 1000:.1f} ms/point; full evaluations "
            f"{full.rows / n:.1f}/point in {full.calls} batched calls, "
            f"{full.seconds / full.rows * 1000:.3f} ms/row, {full.seconds / total:.0%} of the "
            f"time; value and gradient only {full.light_rows / n:.1f}/point "
            f"({full.light_seconds / max(full.light_rows, 1) * 1000:.3f} ms/row); value only "
            f"{value.rows / n:.1f}/point"
        )


if __name__ == "__main__":
    main()
