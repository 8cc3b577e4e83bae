"""Storage consistency: the blob directory against the database, leftovers of interrupted
work, blobs whose content no longer matches their name, versions missing from search.

`check(repair=...)` is what `manage.py fsck [--repair]` runs. The listing and the removals
happen while holding the storage lock exclusively (no ingestion is writing, so a blob not
named by the database really is an orphan); content hashes are verified afterwards without
the lock, since a named blob is never rewritten.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

from hepstore import blobs, scratch

log = logging.getLogger(__name__)
_BLOB_NAME = re.compile(r"^[0-9a-f]{64}\.json$")


@dataclass
class FsckReport:
    orphan_blobs: list[Path] = field(default_factory=list)
    temporary: list[Path] = field(default_factory=list)
    unexpected: list[Path] = field(default_factory=list)
    missing_blobs: list[str] = field(default_factory=list)
    corrupt_blobs: list[str] = field(default_factory=list)
    unindexed_versions: list[int] = field(default_factory=list)
    removed: list[Path] = field(default_factory=list)
    reindexed: int = 0
    repaired: bool = False

    @property
    def clean(self) -> bool:
        """Nothing left to repair and nothing broken that repair cannot fix."""
        if self.missing_blobs or self.corrupt_blobs or self.unexpected:
            return False
        if self.repaired:
            return True
        return not (self.orphan_blobs or self.temporary or self.unindexed_versions)


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _blob_files(root: Path) -> tuple[dict[str, Path], list[Path], list[Path]]:
    """(sha -> path of well-named blobs, temporary files, anything else) under root."""
    named: dict[str, Path] = {}
    temporary: list[Path] = []
    other: list[Path] = []
    if not root.is_dir():
        return named, temporary, other
    for path in sorted(root.rglob("*")):
        if path.is_dir():
            continue
        if path.name.startswith(blobs.INCOMING):
            temporary.append(path)
        elif _BLOB_NAME.match(path.name) and path == blobs.blob_path(path.name[:64]):
            named[path.name[:64]] = path
        else:
            other.append(path)
    return named, temporary, other


def _unindexed_versions() -> list[int]:
    from hepstore.models import AnalysisVersion, Likelihood

    pending = set(AnalysisVersion.objects.filter(search_pending=True).values_list("pk", flat=True))
    without_document = set(
        Likelihood.objects.filter(search_document__isnull=True).values_list("version_id", flat=True)
    )
    return sorted(pending | without_document)


def check(repair: bool = False, verify: bool = True, wait: float = 30.0) -> FsckReport:
    """Find (and with repair, remove or re-index) what is inconsistent in storage.

    repair removes orphan blobs, temporary files, journals and abandoned scratch space, and
    indexes the versions search misses; missing and corrupt blobs are only reported (their
    content is lost; re-ingest the analysis). verify hashes every named blob."""
    from hepstore.models import AnalysisVersion

    report = FsckReport(repaired=repair)
    root = Path(settings.HEPSTORE_BLOB_DIR)
    with scratch.exclusive_storage(wait):
        named, temporary, other = _blob_files(root)
        known = blobs.referenced_shas()
        report.orphan_blobs = [path for sha, path in named.items() if sha not in known]
        report.missing_blobs = sorted(known - named.keys())
        report.temporary = temporary + scratch.journal_paths() + scratch.stale_entries()
        report.unexpected = other
        if repair:
            report.removed += blobs.sweep_locked()
            for path in report.orphan_blobs + temporary:
                if path.exists():
                    path.unlink(missing_ok=True)
                    report.removed.append(path)
    report.unindexed_versions = _unindexed_versions()
    if repair and report.unindexed_versions:
        from hepstore.services import index_pending

        AnalysisVersion.objects.filter(pk__in=report.unindexed_versions).update(search_pending=True)
        report.reindexed = index_pending()
    if verify:
        for sha, path in sorted(named.items()):
            if sha in known and path.exists() and _hash_file(path) != sha:
                report.corrupt_blobs.append(sha)
    if report.removed:
        log.info("fsck removed %d file(s)", len(report.removed))
    return report
