"""Business logic of the archive: validation entry points, ingestion, downloads."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from django.db import transaction

from hepstore.blobs import BlobWriter
from hepstore.bundles import open_submission
from hepstore.errors import (
    HepstoreError,
    InvalidSubmission,
    NotFound,
    PermissionDenied,
    UnusableInput,
)
from hepstore.jsonio import patchset_digest
from hepstore.models import (
    Analysis,
    AnalysisVersion,
    Blob,
    Collaboration,
    Likelihood,
    SignalPoint,
)
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


@dataclass(frozen=True)
class Publication:
    """Metadata of the publication a submission belongs to."""

    title: str
    collaboration: str
    abstract: str = ""
    inspire_id: int | None = None
    arxiv_id: str = ""
    doi: str = ""
    keywords: tuple[str, ...] = ()
    year: int | None = None
    # Optional axis titles and units of the signal labels: {label: {"title", "unit"}}.
    label_info: dict = field(default_factory=dict, hash=False)
    # Caveats the submitter wants shown with the likelihood's results.
    notes: tuple[str, ...] = ()


def ingest_paths(
    paths: list[Path], publication: Publication, user=None, note: str = ""
) -> tuple[Report, AnalysisVersion | None]:
    """Validate, store and record a submission, all or nothing.

    Returns the report and the new version (None when the submission is invalid, in which
    case nothing is stored). Raises PermissionDenied when user may not submit for the
    collaboration.
    """
    if not publication.title.strip() or not publication.collaboration.strip():
        raise UnusableInput("a title and a collaboration are required")
    report, regions = validate_paths(paths)
    if not report.valid:
        return report, None
    if not regions:
        report.error("", "", "the submission holds no likelihood")
        return report, None
    writer = BlobWriter()
    try:
        with transaction.atomic():
            version = _record(regions, publication, user, note, writer)
    except BaseException:
        writer.discard()
        raise
    transaction.on_commit(lambda: _after_commit(version.pk))
    log.info("ingested %s (%d regions)", version, len(regions))
    return report, version


def _record(regions, publication, user, note, writer) -> AnalysisVersion:
    collaboration, _ = Collaboration.objects.get_or_create(name=publication.collaboration.strip())
    if user is not None and not collaboration.allows(user):
        raise PermissionDenied(f"you may not submit for the {collaboration.name} collaboration")
    analysis = None
    if publication.inspire_id:
        analysis = Analysis.objects.filter(inspire_id=publication.inspire_id).first()
    if analysis is None:
        analysis = Analysis.objects.filter(
            title=publication.title, collaboration=collaboration
        ).first()
    if analysis is None:
        analysis = Analysis(collaboration=collaboration)
    if analysis.pk and analysis.collaboration_id != collaboration.pk:
        raise InvalidSubmission(
            f"INSPIRE record {publication.inspire_id} belongs to the "
            f"{analysis.collaboration} collaboration"
        )
    analysis.title = publication.title
    for attr in ("abstract", "inspire_id", "arxiv_id", "doi", "year"):
        value = getattr(publication, attr)
        if value:
            setattr(analysis, attr, value)
    if publication.keywords:
        analysis.keywords = list(publication.keywords)
    analysis.save()
    last = analysis.versions.select_for_update().order_by("-number").first()
    version = AnalysisVersion.objects.create(
        analysis=analysis,
        number=(last.number + 1) if last else 1,
        submitted_by=user if user is not None and user.is_authenticated else None,
        note=note,
    )
    for region in regions:
        bkg = _store(writer, region.workspace)
        ps = _store(writer, region.patchset) if region.patchset is not None else None
        likelihood = Likelihood.objects.create(
            version=version,
            region=region.name,
            background=bkg,
            patchset=ps,
            background_digest=patchset_digest(region.workspace),
            labels=region.patchset["metadata"]["labels"] if region.patchset else [],
            label_info=label_info(publication.label_info, region),
            notes=list(publication.notes),
            summary=region.summary,
        )
        if region.patchset:
            points = []
            for i, p in enumerate(region.patchset["patches"]):
                sha, size = writer.put_json(p["patch"])
                points.append((p["metadata"], i, sha, size))
            Blob.objects.bulk_create(
                [Blob(sha256=sha, size=size) for _, _, sha, size in points], ignore_conflicts=True
            )
            SignalPoint.objects.bulk_create(
                [
                    SignalPoint(
                        likelihood=likelihood,
                        name=meta["name"],
                        values=meta["values"],
                        index=i,
                        patch_id=sha,
                    )
                    for meta, i, sha, _ in points
                ]
            )
    return version


def label_info(given: dict, region: Region) -> dict:
    """The submitter's titles and units of the region's labels ({label: {"title", "unit"}});
    entries for labels the region does not have are dropped."""
    labels = region.patchset["metadata"]["labels"] if region.patchset else []
    out = {}
    for label in labels:
        entry = given.get(label) or {}
        kept = {k: str(entry[k]).strip() for k in ("title", "unit") if entry.get(k)}
        if kept:
            out[label] = kept
    return out


def parse_label_info(text: list[str], kind: str) -> dict:
    """LABEL=VALUE arguments (kind "title" or "unit") as {label: {kind: value}}; raises
    UnusableInput for an argument without "="."""
    out: dict = {}
    for item in text:
        label, sep, value = item.partition("=")
        if not sep or not label.strip():
            raise UnusableInput(f"--label-{kind} takes LABEL=VALUE, got {item!r}")
        out.setdefault(label.strip(), {})[kind] = value.strip()
    return out


def _store(writer: BlobWriter, document) -> Blob:
    sha, size = writer.put_json(document)
    blob, _ = Blob.objects.get_or_create(sha256=sha, defaults={"size": size})
    return blob


def _after_commit(version_pk: int) -> None:
    """Index the new version; a search outage must not undo a committed ingestion."""
    try:
        from hepstore.search import index_version

        index_version(version_pk)
    except ImportError:
        return
    except HepstoreError as exc:
        log.warning("search index not updated for version %s: %s", version_pk, exc)


EXAMPLE_TITLE = "Example search for electroweakinos in one-lepton final states (generated)"


def ingest_example_once(directory: Path) -> str:
    if Analysis.objects.filter(title=EXAMPLE_TITLE).exists():
        return "the example analysis is already in the archive"
    publication = Publication(
        title=EXAMPLE_TITLE,
        collaboration="EXAMPLE",
        abstract="A small two-channel search generated by the portal itself, with a 6x3 grid "
        "of signal points, to demonstrate browsing, downloads and reinterpretation.",
        inspire_id=None,
        arxiv_id="0000.00000",
        keywords=("example", "electroweakino", "SUSY"),
        year=2026,
    )
    report, version = ingest_paths([directory], publication, note="generated example")
    if version is None:
        raise InvalidSubmission(
            "the generated example does not validate", [p.as_dict() for p in report.problems]
        )
    return f"ingested the example as {version}"


def background_workspace(likelihood: Likelihood) -> dict:
    """The stored background-only workspace (without reading the possibly large patchset)."""
    from hepstore import blobs

    return blobs.read_json(likelihood.background_id)


def likelihood_documents(likelihood: Likelihood) -> tuple[dict, dict | None]:
    """The stored background-only workspace and patchset of a likelihood."""
    from hepstore import blobs

    ps = blobs.read_json(likelihood.patchset_id) if likelihood.patchset_id else None
    return background_workspace(likelihood), ps


def patched_workspace(likelihood: Likelihood, name: str) -> dict:
    """The full workspace of one signal point: its patch applied to the background-only one."""
    from hepstore import blobs, patching

    point = likelihood.signals.filter(name=name).first()
    if point is None:
        raise NotFound(f"no signal point {name!r} in this likelihood")
    bkg = blobs.read_json(likelihood.background_id)
    try:
        return patching.apply(bkg, blobs.read_json(point.patch_id))
    except patching.PatchError as exc:  # validated on ingestion; only corrupt storage gets here
        raise HepstoreError(f"stored patch {name!r} no longer applies: {exc}") from exc


def region_archive(likelihood: Likelihood) -> bytes:
    """The region as .tar.gz in the one-directory-per-region layout."""
    import io
    import tarfile
    import time

    from hepstore import blobs

    folder = likelihood.region or "region"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tf:
        members = [("BkgOnly.json", likelihood.background_id)]
        if likelihood.patchset_id:
            members.append(("patchset.json", likelihood.patchset_id))
        for name, sha in members:
            data = blobs.read_bytes(sha)
            info = tarfile.TarInfo(f"{folder}/{name}")
            info.size = len(data)
            info.mtime = int(time.time())
            info.mode = 0o644
            tf.addfile(info, io.BytesIO(data))
    return buffer.getvalue()
