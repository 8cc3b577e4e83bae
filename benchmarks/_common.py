"""Helpers shared by the benchmark scripts (run them from the repository root)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "likelihoods"
ANALYSES = ("sbottom", "staus", "1lbb", "erjr")

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def load(analysis: str, name: str):
    return json.loads((SHARED / analysis / name).read_text())


def single_threaded() -> None:
    """Pin BLAS to one thread so both engines are timed on the same footing."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    # JAX (a peer column where it is installed) runs XLA's CPU kernels on one thread too.
    os.environ.setdefault(
        "XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    )


def peak_rss_mb() -> float:
    """This process's resident-set high-water mark. VmHWM belongs to the process image, while
    getrusage's ru_maxrss survives exec and so reports a large parent's peak in its child."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
