"""Faceted search latency of the embedded (SQLite FTS5) backend with 10,000 synthetic
likelihood records, on a scratch database.

    python benchmarks/search_10k.py [--records 10000] [--queries 300]

Prints p50/p95 of SearchQuery -> SearchResult (count, page of hits with highlights, facets
for collaboration, year, modifier type and label).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta

from _common import ROOT

WORDS = [
    "search",
    "supersymmetry",
    "squark",
    "gluino",
    "chargino",
    "neutralino",
    "slepton",
    "stau",
    "higgs",
    "boson",
    "lepton",
    "jets",
    "missing",
    "momentum",
    "compressed",
    "spectra",
    "displaced",
    "vertices",
    "top",
    "quark",
    "dark",
    "matter",
    "mediator",
    "resonance",
    "dijet",
]
CHANNELS = ("SR_meff", "SRlow", "SRhigh", "CRtt", "CRWjets", "VRZ", "SR_1l2b", "SRISR")
SAMPLES = ("ttbar", "wjets", "zjets", "diboson", "singletop", "ttV", "higgs", "fakes")
MODTYPES = ("normfactor", "normsys", "histosys", "staterror", "shapesys", "lumi", "shapefactor")
LABELS = (("m1", "m2"), ("msb", "mn2", "mn1"), ("mstau", "mlsp"), ("mgluino", "mlsp"))
COLLABS = ("ATLAS", "CMS", "LHCb", "ALICE")


def synthetic(i: int, rng: random.Random) -> dict:
    labels = list(rng.choice(LABELS))
    lo = rng.randrange(100, 1500, 50)
    ranges = {
        label: [lo if k == 0 else 0, lo + rng.randrange(200, 1500, 50)]
        for k, label in enumerate(labels)
    }
    return {
        "likelihood": i,
        "analysis": i,
        "title": " ".join(rng.sample(WORDS, 6)).capitalize(),
        "abstract": " ".join(rng.choices(WORDS, k=40)),
        "collaboration": rng.choice(COLLABS),
        "year": rng.randrange(2012, 2027),
        "inspire_id": 1000000 + i,
        "arxiv_id": f"{i:04d}.0",
        "doi": "",
        "keywords": rng.sample(WORDS, 3),
        "region": rng.choice(("A", "B", "C")),
        "version": 1,
        "channels": rng.sample(CHANNELS, 4),
        "samples": rng.sample(SAMPLES, 5),
        "modifiers": [f"sys_{rng.randrange(300)}" for _ in range(20)],
        "modifier_types": sorted(rng.sample(MODTYPES, 4)),
        "poi": "mu_SIG",
        "n_parameters": rng.randrange(5, 400),
        "n_bins": rng.randrange(1, 60),
        "labels": labels,
        "label_ranges": ranges,
        "n_points": rng.randrange(10, 300),
        "created": (datetime(2020, 1, 1, tzinfo=UTC) + timedelta(hours=i)).isoformat(),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=10000)
    parser.add_argument("--queries", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["HEPSTORE_DATA_DIR"] = tmp
        os.environ.pop("ELASTICSEARCH_URL", None)
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hepstore.settings")
        os.chdir(ROOT)
        import django

        django.setup()
        from django.core.management import call_command

        from hepstore import models as m
        from hepstore.search import DatabaseBackend, SearchQuery, search

        call_command("migrate", verbosity=0)
        rng = random.Random(7)
        docs = [synthetic(i, rng) for i in range(1, args.records + 1)]
        t0 = time.perf_counter()
        collabs = {n: m.Collaboration.objects.create(name=n) for n in COLLABS}
        blob = m.Blob.objects.create(sha256="0" * 64, size=0)
        m.Analysis.objects.bulk_create(
            [
                m.Analysis(
                    id=d["analysis"], title=d["title"], collaboration=collabs[d["collaboration"]]
                )
                for d in docs
            ],
            batch_size=2000,
        )
        m.AnalysisVersion.objects.bulk_create(
            [
                m.AnalysisVersion(id=d["analysis"], number=1, analysis_id=d["analysis"])
                for d in docs
            ],
            batch_size=2000,
        )
        m.Likelihood.objects.bulk_create(
            [
                m.Likelihood(
                    id=d["likelihood"],
                    version_id=d["analysis"],
                    region=d["region"],
                    background=blob,
                    background_digest="0" * 64,
                )
                for d in docs
            ],
            batch_size=2000,
        )
        DatabaseBackend().index(docs)
        print(
            f"indexed {len(docs)} synthetic records in {time.perf_counter() - t0:.1f} s",
            file=sys.stderr,
        )
        queries = []
        for _ in range(args.queries):
            kind = rng.randrange(4)
            if kind == 0:
                queries.append(SearchQuery(text=rng.choice(WORDS)))
            elif kind == 1:
                queries.append(
                    SearchQuery(
                        text=rng.choice(WORDS),
                        collaboration="ATLAS",
                        modifier_type=rng.choice(MODTYPES),
                    )
                )
            elif kind == 2:
                label = rng.choice(rng.choice(LABELS))
                queries.append(
                    SearchQuery(label=label, label_min=300, label_max=800, npars_max=200)
                )
            else:
                queries.append(
                    SearchQuery(
                        text=f"{rng.choice(CHANNELS)} {rng.choice(WORDS)}",
                        year=rng.randrange(2012, 2027),
                        sort="date",
                    )
                )
        search(queries[0])  # warm the page cache
        times, totals = [], []
        for q in queries:
            t = time.perf_counter()
            result = search(q)
            times.append(time.perf_counter() - t)
            totals.append(result.total)
    times.sort()
    p50 = statistics.median(times) * 1000
    p95 = times[int(0.95 * len(times)) - 1] * 1000
    print(
        f"{len(queries)} faceted queries over {args.records} records (embedded SQLite FTS5): "
        f"p50 {p50:.1f} ms, p95 {p95:.1f} ms, max {times[-1] * 1000:.1f} ms; "
        f"median hits {statistics.median(totals):.0f}"
    )
    print(f"bar: median < 100 ms -> {'met' if p50 < 100 else 'NOT met'}")


if __name__ == "__main__":
    main()
