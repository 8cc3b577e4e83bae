"""HEPData's submission format: what a submission.yaml says about its likelihoods.

HEPData describes a record with a multi-document YAML file. Its first document holds
record-wide information; a likelihood is attached there as an `additional_resources` entry
with `type: HistFactory` (any case) whose `location` is a file of the submission: an archive
(.tar.gz, .tgz, .tar, .tar.xz, .zip) or one JSON file. The other documents are data tables
(`name`, `description`, `data_file`, ...), which this portal does not read beyond checking that
their `data_file` exists. The portal's own `likelihoods:` list (workspace and patchset files
with their schema ids) is read as well.

This module only reads the YAML and resolves file names; `bundles` turns the files into
regions. Every problem names the submission.yaml, a JSON pointer into its documents
(`/<document>/<key>/...`) and the line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from hepstore.schemas import kind_of_schema_id, validator
from hepstore.validation import Report

HISTFACTORY = "histfactory"
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar.xz", ".txz", ".tar", ".zip")
RESOURCE_SUFFIXES = (*ARCHIVE_SUFFIXES, ".json")


@dataclass(frozen=True)
class LikelihoodFiles:
    """One entry of the portal's `likelihoods:` list, its files resolved."""

    name: str
    workspace: Path
    patchset: Path | None


@dataclass(frozen=True)
class Resource:
    """An `additional_resources` entry of type HistFactory, its location resolved."""

    path: Path
    location: str
    pointer: str
    line: int
    description: str = ""

    @property
    def is_archive(self) -> bool:
        return self.path.name.lower().endswith(ARCHIVE_SUFFIXES)


@dataclass
class Submission:
    """What a submission.yaml points at; `inspire_id` comes from its `record_ids`."""

    file: str
    likelihoods: list[LikelihoodFiles] = field(default_factory=list)
    resources: list[Resource] = field(default_factory=list)
    inspire_id: int | None = None


class _Lines:
    """Line numbers (1-based) of the nodes of each YAML document, looked up by key path."""

    def __init__(self, text: str) -> None:
        try:
            self.roots = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
        except yaml.YAMLError:
            self.roots = []

    def of(self, doc: int, *path) -> int:
        if doc >= len(self.roots) or self.roots[doc] is None:
            return 0
        node = self.roots[doc]
        line = node.start_mark.line + 1
        for key in path:
            child = None
            if isinstance(node, yaml.MappingNode):
                for k, v in node.value:
                    if k.value == key:
                        child = v
                        line = k.start_mark.line + 1
                        break
            elif (
                isinstance(node, yaml.SequenceNode)
                and isinstance(key, int)
                and 0 <= key < len(node.value)
            ):
                child = node.value[key]
                line = child.start_mark.line + 1
            if child is None:
                break
            node = child
        return line


class _Problems:
    """Problems of one submission.yaml, each with its pointer and line."""

    def __init__(self, report: Report, name: str, lines: _Lines) -> None:
        self.report, self.name, self.lines = report, name, lines

    def _say(self, severity: str, doc: int, path: tuple, message: str) -> None:
        pointer = f"/{doc}" + "".join(f"/{p}" for p in path)
        line = self.lines.of(doc, *path)
        where = f"line {line}: " if line else ""
        self.report.add(self.name, pointer, severity, f"{where}{message}")

    def error(self, doc: int, path: tuple, message: str) -> None:
        self._say("error", doc, path, message)

    def warning(self, doc: int, path: tuple, message: str) -> None:
        self._say("warning", doc, path, message)


def read_submission(path: Path, report: Report, name: str) -> Submission:
    """Read submission.yaml at path (reported as name): the likelihood files it names.

    Problems go into report; a submission naming no likelihood at all is an error there."""
    submission = Submission(name)
    try:
        text = path.read_text(encoding="utf-8")
        docs = list(yaml.safe_load_all(text))
    except UnicodeDecodeError as exc:
        report.error(name, "", f"not UTF-8 text (byte {exc.start})")
        return submission
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        report.error(name, "", f"{where}not valid YAML: {getattr(exc, 'problem', exc)}")
        return submission
    say = _Problems(report, name, _Lines(text))
    if not docs or all(d is None for d in docs):
        report.error(name, "", "submission.yaml is empty")
        return submission
    root = path.parent
    for index, doc in enumerate(docs):
        if doc is None:
            continue
        if not isinstance(doc, dict):
            say.error(index, (), f"document {index} is not a mapping of keys to values")
            continue
        if "likelihoods" in doc:
            submission.likelihoods += _likelihood_entries(doc, index, root, say)
        if index == 0:
            submission.resources += _resources(doc, root, say)
            submission.inspire_id = _inspire_id(doc, say)
        else:
            _check_table(doc, index, root, say)
    if not submission.likelihoods and not submission.resources and report.valid:
        say.error(
            0,
            ("additional_resources",),
            "no likelihood in the submission: the first document needs an "
            "additional_resources entry with type: HistFactory whose location is an archive "
            f"({', '.join(ARCHIVE_SUFFIXES)}) or a JSON file of the submission",
        )
    return submission


def _inside(root: Path, location: str) -> Path | None:
    """The file location names under root, or None when it would leave root."""
    target = (root / location).resolve()
    return target if target.is_relative_to(root.resolve()) else None


def _resources(doc: dict, root: Path, say: _Problems) -> list[Resource]:
    entries = doc.get("additional_resources")
    if entries is None:
        return []
    if not isinstance(entries, list):
        say.error(0, ("additional_resources",), "additional_resources must be a list")
        return []
    found = []
    for i, entry in enumerate(entries):
        at = ("additional_resources", i)
        if not isinstance(entry, dict):
            say.error(0, at, "an additional resource must be a mapping with a location")
            continue
        kind = entry.get("type")
        if not isinstance(kind, str) or kind.strip().lower() != HISTFACTORY:
            continue  # code, plots, links: HEPData's business, not ours
        location = entry.get("location")
        if not isinstance(location, str) or not location.strip():
            say.error(0, (*at, "location"), "a HistFactory resource needs a location (a file)")
            continue
        location = location.strip()
        if "://" in location:
            say.error(
                0,
                (*at, "location"),
                f"{location!r} is a link; a HistFactory resource must be a file of the submission",
            )
            continue
        if not location.lower().endswith(RESOURCE_SUFFIXES):
            say.error(
                0,
                (*at, "location"),
                f"{location!r} is neither an archive ({', '.join(ARCHIVE_SUFFIXES)}) nor a "
                "JSON file",
            )
            continue
        target = _inside(root, location)
        if target is None or not target.is_file():
            say.error(0, (*at, "location"), f"file {location!r} is not in the submission")
            continue
        description = entry.get("description")
        found.append(
            Resource(
                path=target,
                location=location,
                pointer="/0/" + "/".join(map(str, (*at, "location"))),
                line=say.lines.of(0, *at, "location"),
                description=description if isinstance(description, str) else "",
            )
        )
    return found


def _inspire_id(doc: dict, say: _Problems) -> int | None:
    """The INSPIRE id in the first document's record_ids ([{type: inspire, id: N}]), if any."""
    ids = doc.get("record_ids")
    if not isinstance(ids, list):
        return None
    for i, entry in enumerate(ids):
        if isinstance(entry, dict) and str(entry.get("type", "")).lower() == "inspire":
            try:
                return int(entry.get("id"))
            except (TypeError, ValueError):
                say.warning(0, ("record_ids", i, "id"), "the INSPIRE id is not a number")
    return None


def _check_table(doc: dict, index: int, root: Path, say: _Problems) -> None:
    """Tables are HEPData's, not ours: only say when their data file is missing, and when a
    HistFactory resource is attached to a table (HEPData reads those from the first document)."""
    data_file = doc.get("data_file")
    if data_file is not None:
        target = _inside(root, data_file) if isinstance(data_file, str) else None
        if target is None or not target.is_file():
            say.warning(
                index,
                ("data_file",),
                f"data file {data_file!r} of this table is not in the "
                "submission (HEPData will refuse it; the likelihoods are not affected)",
            )
    for i, entry in enumerate(doc.get("additional_resources") or []):
        if isinstance(entry, dict) and str(entry.get("type", "")).lower() == HISTFACTORY:
            say.warning(
                index,
                ("additional_resources", i, "type"),
                "a HistFactory resource attached to a table is not read: attach it to the "
                "first document",
            )


def _likelihood_entries(doc: dict, index: int, root: Path, say: _Problems):
    """The portal's own form: likelihoods: [{name, workspace: {data_file, data_schema},
    patchset: {...}}]."""
    errors = list(validator("submission").iter_errors(doc))
    for err in errors:
        say.error(index, tuple(err.absolute_path), f"submission schema: {err.message}")
    if errors:
        return []
    entries = []
    for i, entry in enumerate(doc["likelihoods"]):
        files: dict[str, Path] = {}
        for key in ("workspace", "patchset"):
            ref = entry.get(key)
            if ref is None:
                continue
            at = ("likelihoods", i, key)
            if kind_of_schema_id(ref["data_schema"]) != key:
                say.error(
                    index,
                    (*at, "data_schema"),
                    f"unrecognised schema {ref['data_schema']!r} for the {key} (expected "
                    f"the HistFactory {key} 1.0.0 $id)",
                )
                break
            target = _inside(root, ref["data_file"])
            if target is None or not target.is_file():
                say.error(
                    index,
                    (*at, "data_file"),
                    f"file {ref['data_file']!r} is not in the submission",
                )
                break
            files[key] = target
        else:
            entries.append(
                LikelihoodFiles(
                    entry.get("name") or f"region{i + 1}", files["workspace"], files.get("patchset")
                )
            )
    return entries
