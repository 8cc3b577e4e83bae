"""Wall time and peak memory of ingesting the largest real likelihood in ../shared/likelihoods
(validation, blob storage, database rows), in a fresh process against a scratch data directory.

    python benchmarks/ingest_largest.py
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

from _common import ROOT, SHARED, peak_rss_mb


def main() -> None:
    folders = [p for p in SHARED.iterdir() if (p / "BkgOnly.json").exists()]
    if not folders:
        sys.exit(f"no likelihoods under {SHARED}")
    largest = max(folders, key=lambda p: sum(f.stat().st_size for f in p.glob("*.json")))
    size_mb = sum(f.stat().st_size for f in largest.glob("*.json")) / 2**20
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["HEPSTORE_DATA_DIR"] = tmp
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hepstore.settings")
        os.chdir(ROOT)
        import django

        django.setup()
        from django.core.management import call_command

        from hepstore.services import Publication, ingest_paths

        call_command("migrate", verbosity=0)
        t0 = time.perf_counter()
        report, version = ingest_paths(
            [largest / "BkgOnly.json", largest / "patchset.json"],
            Publication(title=f"benchmark {largest.name}", collaboration="ATLAS"),
        )
        seconds = time.perf_counter() - t0
    peak_mb = peak_rss_mb()
    assert version is not None, report.errors[:3]
    print(
        f"largest likelihood: {largest.name} ({size_mb:.1f} MB of JSON, "
        f"{version.likelihoods.get().signals.count()} signal points)"
    )
    print(f"ingest wall time: {seconds:.2f} s   peak RSS of the process: {peak_mb:.0f} MB")
    print(f"bar: < 30 s and < 2048 MB -> {'met' if seconds < 30 and peak_mb < 2048 else 'NOT met'}")


if __name__ == "__main__":
    main()
