"""Cost per row of the Newton step's parts on batches of positive-definite Hessians of the
real analyses' sizes (64, 120 and 126 parameters): the Jacobi scaling of the free blocks by
the compiled kernel (kernel.scale_free, numba) and by its numpy twin side by side, and the
LAPACK Cholesky factorisation and solve every row then needs (optimize._cholesky_solve; timed
with a copy of each matrix, which the factorisation overwrites).
Single-threaded, median of M repeats of 20 calls.

    python benchmarks/newton_step.py [--rows 64] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

from _common import single_threaded

single_threaded()


def per_row_us(fn, rows: int, repeat: int) -> float:
    fn()  # the first call loads the compiled function
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(20):
            fn()
        times.append((time.perf_counter() - t0) / 20 / rows * 1e6)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    import numpy as np

    from reinterpret.fitter import kernel, optimize

    kernel.warm_up()
    R = args.rows
    print(f"kernel: {kernel.NAME}; {R} rows per call; us per row")
    print(
        f"{'P':>4s} {'scale numpy':>12s} {'scale ours':>11s} {'ratio':>6s} {'Cholesky+solve':>15s}"
    )
    rng = np.random.default_rng(1)
    for P in (64, 120, 126):
        a = rng.normal(size=(R, P, P))
        hess = a @ a.transpose(0, 2, 1) + P * np.eye(P)
        g = rng.normal(size=(R, P))
        free = np.ones((R, P), dtype=bool)
        out = np.empty((R, P, P)), np.empty((R, P)), np.empty((R, P))
        plain = per_row_us(lambda: kernel.numpy_scale_free(hess, g, free, *out), R, args.repeat)  # noqa: B023
        ours = per_row_us(lambda: kernel.scale_free(hess, g, free, *out), R, args.repeat)  # noqa: B023
        hs, gs, _ = out
        solve = per_row_us(lambda: optimize._cholesky_solve(hs.copy(), -gs), R, args.repeat)  # noqa: B023
        print(f"{P:4d} {plain:12.1f} {ours:11.1f} {plain / ours:6.1f} {solve:15.1f}")


if __name__ == "__main__":
    main()
