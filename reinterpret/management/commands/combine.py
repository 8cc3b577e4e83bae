"""python manage.py combine WS1 WS2 ... [--rename OLD=NEW ...] [--decorrelate NAME ...]
[--output FILE]: one combined workspace (HistFactory JSON 1.0.0).

Exit 0 combined, 1 the workspaces clash (every problem printed with its pointer),
2 unusable arguments.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from django.core.management.base import BaseCommand

from hepstore.errors import HepstoreError
from hepstore.jsonio import load_path
from reinterpret.combinations import MemberSignals, combined_patchset
from reinterpret.fitter.combine import Combiner, Member, Policy, Preference, Rename
from reinterpret.fitter.combine_policy import TAG_PATTERN, CombinationError, Problem


class Usage(Exception):
    """Arguments the command cannot use."""


class Command(BaseCommand):
    help = (
        "Combine workspaces into one: parameters with one name are one parameter unless "
        "decorrelated; clashing channels must be renamed."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "workspaces",
            nargs="+",
            metavar="[TAG=]WS",
            help="workspace files; TAG names the member (default m1, m2, ...)",
        )
        parser.add_argument(
            "--rename",
            action="append",
            default=[],
            metavar="[TAG:]OLD=NEW",
            help="rename a channel or parameter (in member TAG only, or in every member)",
        )
        parser.add_argument(
            "--decorrelate",
            action="append",
            default=[],
            metavar="NAME",
            help="give each member its own copy of parameter NAME (named NAME_TAG)",
        )
        parser.add_argument(
            "--correlate-only",
            action="append",
            default=None,
            metavar="NAME",
            help="decorrelate every shared parameter except these (and the POI)",
        )
        parser.add_argument(
            "--prefer",
            action="append",
            default=[],
            metavar="[NAME=]TAG",
            help="where members set a parameter differently, member TAG's settings win "
            "(for parameter NAME only, or for all)",
        )
        parser.add_argument(
            "--measurement",
            action="append",
            default=[],
            metavar="TAG=NAME",
            help="use this measurement of member TAG (default: its first)",
        )
        parser.add_argument("--measurement-name", help="name of the combined measurement")
        parser.add_argument(
            "--patchset",
            action="append",
            default=[],
            metavar="[TAG=]PATCHSET",
            help="a member's signal patchset (in member order, or tagged)",
        )
        parser.add_argument(
            "--label",
            action="append",
            default=[],
            metavar="TAG:LABEL=NAME",
            help="member TAG's signal label LABEL is called NAME in the combination",
        )
        parser.add_argument("--output", "-o", help="combined workspace file (default: stdout)")
        parser.add_argument("--patchset-output", help="combined patchset file")
        parser.add_argument(
            "--check", action="store_true", help="only report problems; write nothing"
        )
        parser.add_argument("--format", choices=["text", "json"], default="text")

    def handle(self, *args, **opts):
        try:
            members = self._members(opts)
            policy = self._policy(opts, [m.tag for m in members])
            self._documents = [(m.tag, "workspace", m.workspace) for m in members]
            signals = self._signals(opts, members)
            label_map = self._label_map(opts)
        except (Usage, HepstoreError) as exc:
            self.stderr.write(f"error: {getattr(exc, 'message', exc)}")
            raise SystemExit(2) from exc
        invalid = _schema_problems(self._documents)
        if invalid:
            self._report(invalid, {}, False, opts)
            raise SystemExit(1)
        combiner = Combiner(members, policy)
        report = combiner.report
        problems = list(report.problems)
        patchset = None
        if report.valid and signals and not opts["check"]:
            try:
                patchset, more = combined_patchset(combiner, signals, label_map)
            except (CombinationError, HepstoreError) as exc:
                problems += getattr(exc, "problems", [])
                self._report(problems, report.summary, False, opts)
                self.stderr.write(f"error: {getattr(exc, 'message', exc)}")
                raise SystemExit(1) from exc
            problems += more
        self._report(problems, report.summary, report.valid, opts)
        if not report.valid:
            raise SystemExit(1)
        if opts["check"]:
            return
        text = json.dumps(combiner.workspace())
        if opts["output"]:
            Path(opts["output"]).write_text(text, encoding="utf-8")
        else:
            self.stdout.write(text)
        if patchset is not None:
            if not opts["patchset_output"]:
                self.stderr.write("note: --patchset given without --patchset-output; not written")
            else:
                Path(opts["patchset_output"]).write_text(json.dumps(patchset), encoding="utf-8")

    # ------------------------------------------------------------------ arguments
    def _members(self, opts) -> list[Member]:
        chosen = {}
        for item in opts["measurement"]:
            tag, sep, name = item.partition("=")
            if not sep or not name:
                raise Usage(f"--measurement {item!r}: expected TAG=NAME")
            chosen[tag] = name
        members = []
        for i, item in enumerate(opts["workspaces"], start=1):
            tag, path = _tagged(item, f"m{i}")
            members.append(Member(tag, load_path(path), chosen.pop(tag, None)))
        if chosen:
            raise Usage(f"--measurement names unknown members: {', '.join(chosen)}")
        return members

    def _policy(self, opts, tags: list[str]) -> Policy:
        renames = []
        for item in opts["rename"]:
            head, sep, new = item.rpartition("=")
            if not sep or not head or not new:
                raise Usage(f"--rename {item!r}: expected [TAG:]OLD=NEW")
            tag, colon, old = head.partition(":")
            if colon and tag in tags:
                renames.append(Rename(old, new, tag))
            else:
                renames.append(Rename(head, new, None))
        prefer = []
        for item in opts["prefer"]:
            name, sep, tag = item.rpartition("=")
            prefer.append(Preference(tag, name if sep else None))
        return Policy(
            decorrelate=tuple(opts["decorrelate"]),
            correlate_only=None
            if opts["correlate_only"] is None
            else tuple(opts["correlate_only"]),
            renames=tuple(renames),
            prefer=tuple(prefer),
            measurement_name=opts["measurement_name"],
        )

    def _signals(self, opts, members: list[Member]) -> list[MemberSignals]:
        tags = [m.tag for m in members]
        out = []
        for i, item in enumerate(opts["patchset"]):
            default = tags[i] if i < len(tags) else f"m{i + 1}"
            tag, path = _tagged(item, default)
            if tag not in tags:
                raise Usage(f"--patchset {item!r}: no member is tagged {tag!r}")
            document = load_path(path)
            self._documents.append((tag, "patchset", document))
            if not _schema_problems([(tag, "patchset", document)]):
                out.append(MemberSignals.from_patchset(tag, document))
        if len({s.tag for s in out}) != len(out):
            raise Usage("two patchsets for one member")
        return out

    def _label_map(self, opts) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {}
        for item in opts["label"]:
            head, sep, new = item.partition("=")
            tag, colon, old = head.partition(":")
            if not (sep and colon and tag and old and new):
                raise Usage(f"--label {item!r}: expected TAG:LABEL=NAME")
            out.setdefault(tag, {})[old] = new
        return out

    # ------------------------------------------------------------------ output
    def _report(self, problems, summary, valid, opts) -> None:
        if opts["format"] == "json":
            body = {
                "valid": valid,
                "problems": [p.as_dict() for p in problems],
                "summary": summary,
            }
            stream = self.stdout if opts["check"] else sys.stderr
            stream.write(json.dumps(body) + "\n")
            return
        for p in problems:
            where = f"{p.file}{'#' + p.pointer if p.pointer else ''}"
            self.stderr.write(f"{p.severity.upper():8} {where}: {p.message}")
        if summary:
            self.stderr.write(
                f"combined {', '.join(summary['members'])}: {summary['channels']} channels, "
                f"{summary['bins']} bins, {summary['parameters']} parameters "
                f"({len(summary['shared_parameters'])} shared), POI {summary['poi']}"
            )
        if not valid:
            errors = sum(p.severity == "error" for p in problems)
            self.stderr.write(f"NOT COMBINED: {errors} error(s)")


def _schema_problems(documents: list[tuple[str, str, object]]) -> list[Problem]:
    """Schema errors of the inputs, (tag, "workspace" or "patchset", document) each, at most
    10 per document: documents that are not what they should be are refused before anything
    else is looked at."""
    from hepstore.schemas import validator

    problems = []
    for tag, kind, document in documents:
        for i, error in enumerate(validator(kind).iter_errors(document)):
            if i == 10:
                break
            pointer = "".join(
                "/" + str(p).replace("~", "~0").replace("/", "~1") for p in error.absolute_path
            )
            problems.append(Problem(tag, pointer, "error", f"not a valid {kind}: {error.message}"))
    return problems


def _tagged(item: str, default: str) -> tuple[str, str]:
    """TAG=PATH or PATH (a path that merely contains '=' stays a path)."""
    tag, sep, path = item.partition("=")
    if sep and TAG_PATTERN.match(tag) and not Path(item).exists():
        return tag, path
    return default, item
