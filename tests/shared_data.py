"""Access to ../shared/likelihoods (real published likelihoods and pyhf reference numbers).

Tests that need these files skip cleanly when the folder is absent.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "likelihoods"
ANALYSES = ("sbottom", "staus", "1lbb", "erjr")


def require_shared(*parts: str) -> Path:
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared likelihood data not available: {path}")
    return path


@cache
def load(*parts: str):
    with open(require_shared(*parts), encoding="utf-8") as fh:
        return json.load(fh)
