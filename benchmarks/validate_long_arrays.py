"""CPU time to validate a workspace of very long yield arrays, against jsonschema on the whole
document (what the validator did before long number arrays were checked in bulk).

    python benchmarks/validate_long_arrays.py [--bins 1500000]

Writes a one-channel workspace (a sample with N bins, its staterror, N observed counts) to a
scratch directory, then times, in this process: our whole validation of the file (reading,
schema, consistency checks, summary) and jsonschema's workspace validation of the parsed
document alone.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from pathlib import Path

import _common  # noqa: F401 - puts the repository on sys.path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hepstore.settings")


def workspace(bins: int) -> dict:
    rng = random.Random(1)
    data = [round(rng.uniform(1, 100), 3) for _ in range(bins)]
    return {
        "version": "1.0.0",
        "channels": [
            {
                "name": "SR",
                "samples": [
                    {
                        "name": "bkg",
                        "data": data,
                        "modifiers": [
                            {"name": "mu", "type": "normfactor", "data": None},
                            {"name": "stat", "type": "staterror", "data": [x * 0.1 for x in data]},
                        ],
                    }
                ],
            }
        ],
        "observations": [{"name": "SR", "data": [int(x) for x in data]}],
        "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": []}}],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bins", type=int, default=1_500_000)
    args = parser.parse_args()
    import django

    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("HEPSTORE_DATA_DIR", tmp)
        django.setup()
        from hepstore.schemas import validator
        from hepstore.services import validate_paths

        path = Path(tmp) / "BkgOnly.json"
        doc = workspace(args.bins)
        path.write_text(json.dumps(doc))
        print(f"workspace: {args.bins:,} bins, {path.stat().st_size / 1e6:.1f} MB")
        t = time.process_time()
        report, _ = validate_paths([path])
        ours = time.process_time() - t
        print(f"ours, whole validation: {ours:.2f} s CPU (valid={report.valid})")
        t = time.process_time()
        errors = list(validator("workspace").iter_errors(doc))
        peer = time.process_time() - t
        print(f"jsonschema on the whole document: {peer:.2f} s CPU ({len(errors)} errors)")
        print(f"ratio: {peer / ours:.1f}x")


if __name__ == "__main__":
    main()
