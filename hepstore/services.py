"""Business logic of the archive: validation entry points, ingestion, downloads."""

from __future__ import annotations

import logging
from pathlib import Path

from hepstore.bundles import open_submission
from hepstore.validation import Region, Report, validate_region

log = logging.getLogger(__name__)


def validate_paths(paths: list[Path]) -> tuple[Report, list[Region]]:
    """Validate a submission; the regions carry their parsed documents and summaries."""
    report = Report()
    with open_submission(paths, report) as regions:
        for region in regions:
            validate_region(region, report)
    report.summary = {
        "regions": {r.name: r.summary for r in regions},
        "region_count": len(regions),
        "errors": len(report.errors),
        "warnings": len(report.problems) - len(report.errors),
    }
    return report, regions
