"""Find the regions of a submission in whatever layout it comes in.

Layouts: a directory (or archive) with one directory per region holding BkgOnly.json and
patchset.json; BkgOnly.json beside one file of patch operations per signal point
(patch_<name>.json or patch.<name>.json, turned into a patchset); a HEPData-style
submission.yaml whose likelihoods entries name the files; or the files themselves.
Archives are unpacked into a private temporary directory with strict limits.
"""

from __future__ import annotations

import contextlib
import re
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import yaml
from django.conf import settings

from hepstore import jsonio, scratch
from hepstore.errors import TooLarge, UnusableInput
from hepstore.schemas import kind_of_schema_id, validator
from hepstore.validation import Region, Report, check_duplicate_keys

BKG_NAMES = {"bkgonly.json"}
PATCH_FILE = re.compile(r"^patch[._](?P<name>.+)\.json$", re.IGNORECASE)
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".zip", ".tar")
DOCUMENT_SUFFIXES = (".json", ".yaml", ".yml")


@contextlib.contextmanager
def open_submission(paths: list[Path], report: Report) -> Iterator[list[Region]]:
    """Regions of the submission at paths; file-level problems go into report."""
    with scratch.scratch_dir("unpack-") as tmp:
        if len(paths) == 1 and _is_archive(paths[0]):
            root = tmp / "unpacked"
            unpack(paths[0], root)
            yield find_regions([root], report, root)
        else:
            for path in paths:
                if not path.exists():
                    raise UnusableInput(f"{path} does not exist")
            base = paths[0] if len(paths) == 1 and paths[0].is_dir() else None
            yield find_regions(paths, report, base)


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


def find_regions(paths: list[Path], report: Report, base: Path | None) -> list[Region]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file() and not p.is_symlink())
        else:
            files.append(path)
    rel = _relative_namer(base)
    yamls = [f for f in files if f.name.lower() == "submission.yaml"]
    if yamls:
        return _from_submission_yaml(yamls[0], report, rel)
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


def _relative_namer(base: Path | None):
    def name(path: Path) -> str:
        if base is not None:
            try:
                return str(path.relative_to(base))
            except ValueError:
                pass
        return path.name

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
            "references": {"hepdata": "ins0000000"},
        },
        "patches": [
            {"metadata": {"name": n, "values": v}, "patch": ops}
            for (n, ops), v in zip(entries, values, strict=True)
        ],
        "version": "1.0.0",
    }


def _from_submission_yaml(path: Path, report: Report, rel) -> list[Region]:
    name = rel(path)
    limit = settings.HEPSTORE_MAX_JSON_BYTES
    if path.stat().st_size > limit:
        report.error(name, "", f"submission.yaml is larger than {limit / 2**20:.0f} MB")
        return []
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        report.error(name, "", f"not valid YAML: {exc}")
        return []
    entries = [(i, d) for i, d in enumerate(docs) if isinstance(d, dict) and "likelihoods" in d]
    if not entries:
        report.error(name, "", "submission.yaml has no 'likelihoods:' entry")
        return []
    regions = []
    for doc_index, doc in entries:
        errors = list(validator("submission").iter_errors(doc))
        for err in errors:
            ptr = "".join(f"/{p}" for p in err.absolute_path)
            report.error(name, f"/{doc_index}{ptr}", f"submission schema: {err.message}")
        if errors:
            continue
        for i, entry in enumerate(doc["likelihoods"]):
            ptr = f"/{doc_index}/likelihoods/{i}"
            region = _entry_region(path, entry, ptr, report, rel, name)
            if region is not None:
                region.name = entry.get("name") or f"region{i + 1}"
                regions.append(region)
    return regions


def _entry_region(yaml_path, entry, ptr, report, rel, name):
    files = {}
    for key in ("workspace", "patchset"):
        ref = entry.get(key)
        if ref is None:
            continue
        kind = kind_of_schema_id(ref["data_schema"])
        if kind != key:
            report.error(
                name,
                f"{ptr}/{key}/data_schema",
                f"unrecognised schema "
                f"{ref['data_schema']!r} for the {key} (expected the HistFactory "
                f"{key} 1.0.0 $id)",
            )
            return None
        target = (yaml_path.parent / ref["data_file"]).resolve()
        if not target.is_relative_to(yaml_path.parent.resolve()) or not target.is_file():
            report.error(
                name,
                f"{ptr}/{key}/data_file",
                f"file {ref['data_file']!r} is not in the submission",
            )
            return None
        files[key] = target
    region = Region("", rel(files["workspace"]), _read(files["workspace"], report, rel))
    if "patchset" in files:
        region.patchset_file = rel(files["patchset"])
        region.patchset = _read(files["patchset"], report, rel)
    return region
