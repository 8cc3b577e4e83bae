"""Business logic of the archive: validation entry points, ingestion, downloads."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Iterator
from pathlib import Path

from django.db import IntegrityError, OperationalError, transaction

from hepstore import blobs
from hepstore.blobs import BlobWriter
from hepstore.bundles import PLACEHOLDER_REFERENCE, open_submission
from hepstore.errors import (
    AlreadyStored,
    Busy,
    HepstoreError,
    InvalidSubmission,
    NotFound,
    PermissionDenied,
    StorageFailure,
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
    with validated(paths) as (report, regions):
        return report, regions


@contextlib.contextmanager
def validated(paths: list[Path]) -> Iterator[tuple[Report, list[Region]]]:
    """The validated submission, its files (Region.sources) readable inside the block."""
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
        yield report, regions


@dataclasses.dataclass(frozen=True)
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
    label_info: dict = dataclasses.field(default_factory=dict, hash=False)
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
    with validated(paths) as (report, regions):
        if not report.valid:
            return report, None
        if not regions:
            report.error("", "", "the submission holds no likelihood")
            return report, None
        publication = _with_named_record(publication, regions, report)
        if not report.valid:
            return report, None
        with contextlib.suppress(Busy):
            blobs.sweep(wait=0)  # what a killed ingestion left, if no other one is writing
        version = _store_all_or_nothing(regions, publication, user, note)
    transaction.on_commit(lambda: _after_commit(version.pk))
    log.info("ingested %s (%d regions)", version, len(regions))
    return report, version


def _store_all_or_nothing(regions, publication, user, note) -> AnalysisVersion:
    """Write the blobs and rows of a submission in one transaction; on any failure the
    transaction is rolled back and the blobs this ingestion created are removed.

    Two submissions of one analysis racing each other: the loser of a uniqueness race is
    retried once, and then finds the winner's version (same content: AlreadyStored)."""
    for attempt in (1, 2):
        with BlobWriter() as writer:
            try:
                with transaction.atomic():
                    return _record(regions, publication, user, note, writer)
            except IntegrityError:
                writer.discard()
                if attempt == 2:
                    raise
            except OperationalError as exc:
                writer.discard()
                raise _database_failure(exc) from exc
            except BaseException:
                writer.discard()
                raise
    raise AssertionError("unreachable")


def _database_failure(exc: OperationalError) -> HepstoreError:
    text = str(exc).lower()
    if "locked" in text or "busy" in text:
        return Busy("the archive is busy with another submission; try again shortly", 10)
    if "readonly" in text or "read-only" in text or "disk" in text or "full" in text:
        return StorageFailure(f"the database cannot be written ({exc}); nothing was stored")
    return HepstoreError(f"the database refused the submission ({exc}); nothing was stored")


def _content(likelihoods) -> set[tuple[str, str, str | None]]:
    return {(lh.region, lh.background_id, lh.patchset_id) for lh in likelihoods}


def _with_named_record(publication: Publication, regions, report: Report) -> Publication:
    """The INSPIRE id a HEPData submission names (record_ids) when none was given; a
    different one given is an error (the files would be filed under the wrong paper)."""
    named = {r.inspire_id for r in regions if r.inspire_id is not None}
    if not named:
        return publication
    (inspire_id,) = named  # one submission.yaml per submission
    if publication.inspire_id is None:
        return dataclasses.replace(publication, inspire_id=inspire_id)
    if publication.inspire_id != inspire_id:
        report.error(
            "submission.yaml",
            "/0/record_ids",
            f"the submission names INSPIRE record {inspire_id}, but {publication.inspire_id} "
            "was given",
        )
    return publication


def _record(regions, publication, user, note, writer) -> AnalysisVersion:
    collaboration, _ = Collaboration.objects.get_or_create(name=publication.collaboration.strip())
    # Submissions of one collaboration are recorded one at a time (on PostgreSQL; SQLite's
    # write transactions are serialised anyway), so two identical ones cannot both be new.
    collaboration = Collaboration.objects.select_for_update().get(pk=collaboration.pk)
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
            f"{analysis.collaboration} collaboration (analysis {analysis.pk}); if that is "
            "wrong, an administrator can reassign the analysis in the admin"
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
    if publication.inspire_id:
        for region in regions:
            if region.patchset is not None:
                _cite_in_assembled_patchset(region.patchset, publication.inspire_id)
    stored = [
        (
            region,
            _store(writer, region.workspace),
            _store(writer, region.patchset) if region.patchset is not None else None,
        )
        for region in regions
    ]
    if last is not None:
        _refuse_repeat(analysis, last, stored)
    version = AnalysisVersion.objects.create(
        analysis=analysis,
        number=(last.number + 1) if last else 1,
        submitted_by=user if user is not None and user.is_authenticated else None,
        note=note,
        search_pending=True,
    )
    for region, bkg, ps in stored:
        published = {role: _store_file(writer, path) for role, path in region.sources.items()}
        likelihood = Likelihood.objects.create(
            version=version,
            region=region.name,
            background=bkg,
            patchset=ps,
            background_published=published.get("workspace"),
            patchset_published=published.get("patchset") if ps is not None else None,
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


def _refuse_repeat(analysis: Analysis, last: AnalysisVersion, stored) -> None:
    """A submission with the same regions and documents as the latest version is not a new
    version: AlreadyStored names the existing one."""
    new = {(r.name, bkg.pk, ps.pk if ps else None) for r, bkg, ps in stored}
    if new == _content(last.likelihoods.all()):
        raise AlreadyStored(
            f"this submission is identical to version {last.number} of analysis "
            f"{analysis.pk} ({analysis.title!r}, /api/v1/analyses/{analysis.pk}/); "
            "nothing new was stored",
            [
                {
                    "file": "",
                    "pointer": "",
                    "severity": "error",
                    "message": f"already stored as analysis {analysis.pk} version {last.number}",
                }
            ],
        )


def _store(writer: BlobWriter, document) -> Blob:
    sha, size = writer.put_json(document)
    blob, _ = Blob.objects.get_or_create(sha256=sha, defaults={"size": size})
    return blob


def _store_file(writer: BlobWriter, path: Path) -> Blob:
    """The file's bytes as they were submitted, named by their sha256."""
    sha, size = writer.put_file(path)
    blob, _ = Blob.objects.get_or_create(sha256=sha, defaults={"size": size})
    return blob


def _cite_in_assembled_patchset(patchset: dict, inspire_id: int) -> None:
    """A patchset the portal assembled from per-point files cites the publication once
    ingestion knows it (validation alone cannot: it has only a placeholder)."""
    references = patchset["metadata"].setdefault("references", {})
    if references.get("hepdata") == PLACEHOLDER_REFERENCE:
        references["hepdata"] = f"ins{inspire_id}"


def _after_commit(version_pk: int) -> None:
    """Index the new version (and any other a crash left unindexed) on the Celery queue when
    there is one, else here; a search outage must not undo a committed ingestion: the
    version stays marked and is indexed later."""
    from reinterpret.jobs import enqueue_index

    if not enqueue_index(version_pk):
        index_pending()


def index_pending() -> int:
    """Index every committed version still marked for indexing (the mark is set in the
    ingestion's transaction, so a crash between commit and indexing loses nothing); called
    after each ingestion, by the embedded worker's start and by `fsck --repair`. Returns
    the number of versions indexed."""
    from hepstore.search import index_version

    done = 0
    for pk in AnalysisVersion.objects.filter(search_pending=True).values_list("pk", flat=True):
        try:
            index_version(pk)
        except (HepstoreError, OSError, KeyError, TypeError, ValueError) as exc:
            # A search outage, or a stored document fsck will report as missing/corrupt:
            # the version stays marked and is tried again next time.
            log.warning("search index not updated for version %s: %r", pk, exc)
            continue
        AnalysisVersion.objects.filter(pk=pk).update(search_pending=False)
        done += 1
    return done


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
    return blobs.read_json(likelihood.background_id)


def likelihood_documents(likelihood: Likelihood) -> tuple[dict, dict | None]:
    """The stored background-only workspace and patchset of a likelihood."""
    ps = blobs.read_json(likelihood.patchset_id) if likelihood.patchset_id else None
    return background_workspace(likelihood), ps


def patched_workspace(likelihood: Likelihood, name: str) -> dict:
    """The full workspace of one signal point: its patch applied to the background-only one."""
    from hepstore import patching

    point = likelihood.signals.filter(name=name).first()
    if point is None:
        raise NotFound(f"no signal point {name!r} in this likelihood")
    bkg = blobs.read_json(likelihood.background_id)
    try:
        return patching.apply(bkg, blobs.read_json(point.patch_id))
    except patching.PatchError as exc:  # validated on ingestion; only corrupt storage gets here
        raise HepstoreError(f"stored patch {name!r} no longer applies: {exc}") from exc


def region_archive(likelihood: Likelihood) -> bytes:
    """The region as .tar.gz in the one-directory-per-region layout, holding the files as
    published (canonical JSON where the portal assembled them). Deterministic: members in
    name order with fixed metadata (mtime = the version's creation, uid/gid 0) inside a gzip
    stream without a timestamp, so the same region is the same bytes on every request."""
    import gzip
    import io
    import tarfile

    folder = likelihood.region or "region"
    mtime = int(likelihood.version.created.timestamp())
    members = [("BkgOnly.json", likelihood.background_published_id or likelihood.background_id)]
    if likelihood.patchset_id:
        members.append(
            ("patchset.json", likelihood.patchset_published_id or likelihood.patchset_id)
        )
    buffer = io.BytesIO()
    with (
        gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tf,
    ):
        for name, sha in sorted(members):
            info = tarfile.TarInfo(f"{folder}/{name}")
            info.size = blobs.blob_path(sha).stat().st_size
            info.mtime = mtime
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            with blobs.blob_path(sha).open("rb") as data:
                tf.addfile(info, data)
    return buffer.getvalue()
