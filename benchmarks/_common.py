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
