"""Find the regions of a submission in whatever layout it comes in.

Layouts: a directory (or archive) with one directory per region holding BkgOnly.json and
patchset.json; BkgOnly.json beside one file of patch operations per signal point
(patch_<name>.json or patch.<name>.json, turned into a patchset); a HEPData-style
HEPData submission (submission.yaml whose HistFactory additional resources are archives or
JSON files, read by `hepdata`; also HEPData's record archive, a zip of that folder); or the
files themselves.
Archives are unpacked into a private temporary directory with strict limits.
"""

from __future__ import annotations

import contextlib
import re
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings

from hepstore import hepdata, jsonio, scratch
from hepstore.errors import TooLarge, UnusableInput
from hepstore.validation import Region, Report, check_duplicate_keys

BKG_NAMES = {"bkgonly.json"}
PATCH_FILE = re.compile(r"^patch[._](?P<name>.+)\.json$", re.IGNORECASE)
ARCHIVE_SUFFIXES = hepdata.ARCHIVE_SUFFIXES
DOCUMENT_SUFFIXES = (".json", ".yaml", ".yml")
# The INSPIRE reference of a patchset assembled from per-point files until ingestion knows it.
PLACEHOLDER_REFERENCE = "ins0000000"


@contextlib.contextmanager
def open_submission(paths: list[Path], report: Report) -> Iterator[list[Region]]:
    """Regions of the submission at paths; file-level problems go into report."""
    with scratch.scratch_dir("unpack-") as tmp:
        if len(paths) == 1 and _is_archive(paths[0]):
            root = tmp / "unpacked"
            unpack(paths[0], root)
            yield find_regions([root], report, root, workdir=Path(tmp))
        else:
            for path in paths:
                if not path.exists():
                    raise UnusableInput(f"{path} does not exist")
            base = paths[0] if len(paths) == 1 and paths[0].is_dir() else None
            yield find_regions(paths, report, base, workdir=Path(tmp))


def _is_archive(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(ARCHIVE_SUFFIXES)


def unpack(archive: Path, dest: Path) -> None:
    """Unpack safely: no absolute paths or '..', no links or devices, bounded size/count."""
    limit = settings.HEPSTORE_MAX_UNPACKED_BYTES
    max_members = settings.HEPSTORE_MAX_ARCHIVE_MEMBERS
    dest.mkdir(parents=True)
    total = 0
    name = archive.name
    try:
        if name.lower().endswith(".zip"):
            with zipfile.ZipFile(archive) as zf:
                infos = zf.infolist()
                if len(infos) > max_members:
                    raise UnusableInput(f"{name} has more than {max_members} members")
                for info in infos:
                    target = _safe_target(dest, info.filename, name)
                    if (info.external_attr >> 16) & 0o170000 == 0o120000:
                        raise UnusableInput(f"{name}: member {info.filename!r} is a link")
                    if info.is_dir():
                        target.mkdir(parents=True, exist_ok=True)
                        continue
                    _refuse_large_document(info.filename, info.file_size, name)
                    total += info.file_size
                    if total > limit:
                        raise TooLarge(f"{name} unpacks to more than {limit // 2**20} MB")
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with zf.open(info) as src, open(target, "wb") as out:
                        _copy_bounded(src, out, limit - total + info.file_size, name)
        else:
            with tarfile.open(archive, "r:*") as tf:
                count = 0
                for member in tf:
                    count += 1
                    if count > max_members:
                        raise UnusableInput(f"{name} has more than {max_members} members")
                    target = _safe_target(dest, member.name, name)
                    if member.isdir():
                        target.mkdir(parents=True, exist_ok=True)
                        continue
                    if not member.isfile():
                        raise UnusableInput(
                            f"{name}: member {member.name!r} is a link, device "
                            "or other special file, which is not accepted"
                        )
                    _refuse_large_document(member.name, member.size, name)
                    total += member.size
                    if total > limit:
                        raise TooLarge(f"{name} unpacks to more than {limit // 2**20} MB")
                    target.parent.mkdir(parents=True, exist_ok=True)
                    src = tf.extractfile(member)
                    with src, open(target, "wb") as out:
                        _copy_bounded(src, out, member.size, name)
    except OSError as exc:
        failure = scratch.storage_failure(exc, f"unpack {name}")
        if failure is not None:
            raise failure from exc
        raise UnusableInput(f"{name} is not a readable archive: {exc}") from exc
    except (tarfile.TarError, zipfile.BadZipFile, EOFError) as exc:
        raise UnusableInput(f"{name} is not a readable archive: {exc}") from exc


def _refuse_large_document(member: str, size: int, archive: str) -> None:
    """A JSON or YAML member above the per-document limit is refused from the archive's
    header, before any of it is unpacked."""
    limit = settings.HEPSTORE_MAX_JSON_BYTES
    if size > limit and member.lower().endswith(DOCUMENT_SUFFIXES):
        raise TooLarge(
            f"{archive}: {member} is {size / 2**20:.1f} MB; a JSON or YAML file may have at "
            f"most {limit / 2**20:.0f} MB"
        )


def _safe_target(dest: Path, member: str, archive: str) -> Path:
    if member.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", member):
        raise UnusableInput(f"{archive}: member {member!r} has an absolute path")
    target = (dest / member).resolve()
    if not target.is_relative_to(dest.resolve()):
        raise UnusableInput(f"{archive}: member {member!r} would escape the archive directory")
    return target


def _copy_bounded(src, out, limit: int, name: str) -> None:
    written = 0
    while chunk := src.read(1 << 20):
        written += len(chunk)
        if written > limit:
            raise TooLarge(f"{name} unpacks to more than its declared size or the limit")
        out.write(chunk)


def find_regions(
    paths: list[Path],
    report: Report,
    base: Path | None,
    workdir: Path | None = None,
    prefix: str = "",
) -> list[Region]:
    """Regions of the files at paths (directories are walked). Files are reported relative to
    base, after prefix; workdir is where archives a submission.yaml names are unpacked (a
    submission.yaml is only read when there is one)."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file() and not p.is_symlink())
        else:
            files.append(path)
    rel = _relative_namer(base, prefix)
    yamls = [f for f in files if f.name.lower() == "submission.yaml"]
    if yamls and workdir is not None:
        # HEPData's record archive nests the submission in a folder: take the outermost.
        yaml_path = min(yamls, key=lambda f: (len(f.parts), str(f)))
        return _from_submission_yaml(yaml_path, report, rel, workdir)
    bkg_files = [f for f in files if f.name.lower() in BKG_NAMES]
    if not bkg_files:
        bkg_files = [f for f in files if f.suffix == ".json" and _looks_like(f, "workspace")]
    if not bkg_files:
        raise UnusableInput(
            "no background-only workspace found (expected BkgOnly.json, a "
            "workspace JSON file or a submission.yaml)"
        )
    regions = []
    for bkg in bkg_files:
        siblings = [f for f in files if f.parent == bkg.parent and f != bkg]
        region_name = bkg.parent.name if base is not None and bkg.parent != base else "main"
        if region_name in ("", ".", "unpacked"):
            region_name = "main"
        regions.append(_region(bkg, siblings, report, rel, region_name))
    if len({r.name for r in regions}) != len(regions):
        for i, r in enumerate(regions):
            r.name = f"{r.name}-{i + 1}"
    return regions


def _relative_namer(base: Path | None, prefix: str = ""):
    def name(path: Path) -> str:
        if base is not None:
            try:
                return prefix + str(path.relative_to(base))
            except ValueError:
                pass
        return prefix + path.name

    return name


def _looks_like(path: Path, kind: str) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(4096).decode("utf-8", "ignore")
    except OSError:
        return False
    if kind == "workspace":
        return '"channels"' in head and '"patches"' not in head
    return '"patches"' in head


def _read(path: Path, report: Report, rel) -> dict | None:
    """The parsed document, or None with the reason in report (too large, not JSON, ...).
    Repeated keys are reported with their pointers; the document is still checked."""
    duplicates: list[tuple[str, str]] = []
    try:
        doc = jsonio.load_path(path, settings.HEPSTORE_MAX_JSON_BYTES, duplicates)
    except jsonio.JSONProblem as exc:
        report.error(rel(path), exc.pointer, exc.message)
        return None
    except UnusableInput as exc:
        report.error(rel(path), "", exc.message)
        return None
    check_duplicate_keys(duplicates, report, rel(path))
    return doc


def _region(bkg: Path, siblings: list[Path], report: Report, rel, name: str) -> Region:
    workspace = _read(bkg, report, rel)
    region = Region(name, rel(bkg), workspace)
    region.sources["workspace"] = bkg
    patchsets = [f for f in siblings if f.name.lower() == "patchset.json"]
    if not patchsets:
        patchsets = [
            f
            for f in siblings
            if f.suffix == ".json" and not PATCH_FILE.match(f.name) and _looks_like(f, "patchset")
        ]
    patch_files = sorted(f for f in siblings if PATCH_FILE.match(f.name))
    if patchsets:
        region.patchset_file = rel(patchsets[0])
        region.patchset = _read(patchsets[0], report, rel)
        region.sources["patchset"] = patchsets[0]
        if len(patchsets) > 1:
            report.warning(
                rel(patchsets[1]),
                "",
                f"more than one patchset beside {rel(bkg)}; only {rel(patchsets[0])} is used",
            )
    elif patch_files:
        region.patchset_file = f"{rel(bkg.parent / 'patch_*.json')}"
        region.patchset = patchset_from_files(patch_files, workspace, report, rel)
    return region


def parse_point_name(name: str) -> list:
    """Numeric values at the end of a signal-point name: 'ERJR_100p0_20p0' -> [100.0, 20.0]."""
    values = []
    for token in reversed(name.split("_")):
        m = re.fullmatch(r"(m?)(\d+)(?:p(\d+))?", token)
        if not m:
            break
        text = m.group(2) + ("." + m.group(3) if m.group(3) is not None else "")
        value = float(text) if m.group(3) is not None else int(text)
        values.append(-value if m.group(1) else value)
    return list(reversed(values))


def patchset_from_files(files: list[Path], workspace, report: Report, rel) -> dict | None:
    """A patchset assembled from one file of patch operations per signal point."""
    entries = []
    for f in files:
        ops = _read(f, report, rel)
        if ops is None:
            continue
        if not isinstance(ops, list):
            report.error(rel(f), "", "a per-point patch file must hold a list of operations")
            continue
        entries.append((PATCH_FILE.match(f.name).group("name"), ops))
    if not entries:
        return None
    parsed = [parse_point_name(n) for n, _ in entries]
    counts = {len(v) for v in parsed}
    if len(counts) == 1 and counts != {0}:
        k = counts.pop()
        labels = [f"p{i + 1}" for i in range(k)]
        values = parsed
    else:
        labels = ["name"]
        values = [[n] for n, _ in entries]
    digest = jsonio.patchset_digest(workspace) if workspace is not None else "0" * 64
    return {
        "metadata": {
            "description": f"assembled from {len(entries)} per-point patch files",
            "digests": {"sha256": digest},
            "labels": labels,
            "references": {"hepdata": PLACEHOLDER_REFERENCE},
        },
        "patches": [
            {"metadata": {"name": n, "values": v}, "patch": ops}
            for (n, ops), v in zip(entries, values, strict=True)
        ],
        "version": "1.0.0",
    }


def _from_submission_yaml(path: Path, report: Report, rel, workdir: Path) -> list[Region]:
    """Regions of a submission.yaml: its likelihoods entries and HistFactory resources."""
    name = rel(path)
    limit = settings.HEPSTORE_MAX_JSON_BYTES
    if path.stat().st_size > limit:
        report.error(name, "", f"submission.yaml is larger than {limit / 2**20:.0f} MB")
        return []
    submission = hepdata.read_submission(path, report, name)
    regions = []
    for entry in submission.likelihoods:
        region = Region(entry.name, rel(entry.workspace), _read(entry.workspace, report, rel))
        region.sources["workspace"] = entry.workspace
        if entry.patchset is not None:
            region.patchset_file = rel(entry.patchset)
            region.patchset = _read(entry.patchset, report, rel)
            region.sources["patchset"] = entry.patchset
        regions.append(region)
    archives = [r for r in submission.resources if r.is_archive]
    for i, resource in enumerate(archives):
        found = _archive_regions(resource, report, rel, workdir / f"resource-{i + 1}", name)
        if len(archives) > 1:
            stem = Path(resource.location).name.split(".")[0]
            for region in found:
                region.name = f"{stem}-{region.name}" if region.name != "main" else stem
        regions += found
    documents = [r for r in submission.resources if not r.is_archive]
    if documents:
        regions += _document_regions(documents, report, rel, name)
    for region in regions:
        region.inspire_id = submission.inspire_id
    if len({r.name for r in regions}) != len(regions):
        for i, region in enumerate(regions):
            region.name = f"{region.name}-{i + 1}"
    return regions


def _resource_problem(report: Report, yaml_name: str, resource, message: str) -> None:
    report.error(
        yaml_name,
        resource.pointer,
        f"line {resource.line}: HistFactory resource {resource.location!r}: {message}",
    )


def _archive_regions(resource, report: Report, rel, workdir: Path, yaml_name: str):
    """Regions inside one archive resource; one that holds none, or cannot be read, is an
    error at its location in submission.yaml."""
    try:
        root = workdir / "unpacked"
        unpack(resource.path, root)
        return find_regions([root], report, root, prefix=rel(resource.path) + "/")
    except TooLarge:
        raise
    except UnusableInput as exc:
        _resource_problem(report, yaml_name, resource, exc.message)
        return []


def _document_regions(resources, report: Report, rel, yaml_name: str) -> list[Region]:
    """Regions of the JSON resources, read together so that a patchset given as a resource
    of its own pairs with the workspace beside it. Each region is named after its workspace
    file; a JSON resource that ends up in no region is an error at its location."""
    try:
        regions = find_regions([r.path for r in resources], report, None)
    except UnusableInput as exc:
        _resource_problem(report, yaml_name, resources[0], exc.message)
        return []
    used = {path for region in regions for path in region.sources.values()}
    for resource in resources:
        if resource.path not in used:
            _resource_problem(
                report,
                yaml_name,
                resource,
                "is neither a workspace nor a patchset beside one (in the same folder)",
            )
    for region in regions:
        region.name = region.sources["workspace"].stem
    return regions
