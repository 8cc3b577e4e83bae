"""manage.py validate PATH [PATH ...] [--format json]: exit 0 valid, 1 invalid, 2 unusable."""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand

from hepstore.errors import UnusableInput
from hepstore.services import validate_paths


class Command(BaseCommand):
    help = "Validate a likelihood submission (directory, archive, submission.yaml or files)."

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="+", metavar="PATH")
        parser.add_argument("--format", choices=["text", "json"], default="text")

    def handle(self, *args, **opts):
        try:
            report, _ = validate_paths([Path(p) for p in opts["paths"]])
        except UnusableInput as exc:
            if opts["format"] == "json":
                self.stdout.write(
                    json.dumps(
                        {
                            "valid": False,
                            "problems": [
                                {
                                    "file": "",
                                    "pointer": "",
                                    "severity": "error",
                                    "message": exc.message,
                                }
                            ],
                            "summary": {},
                        }
                    )
                )
            else:
                self.stderr.write(f"error: {exc.message}")
            raise SystemExit(2) from exc
        if opts["format"] == "json":
            self.stdout.write(json.dumps(report.as_dict()))
        else:
            self._text(report)
        raise SystemExit(0 if report.valid else 1)

    def _text(self, report):
        for p in report.problems:
            self.stdout.write(
                f"{p.severity.upper():8} {p.file}{'#' + p.pointer if p.pointer else ''}: "
                f"{p.message}"
            )
        for region, summary in report.summary.get("regions", {}).items():
            mods = ", ".join(f"{k} {v}" for k, v in summary.get("modifiers_by_type", {}).items())
            self.stdout.write(
                f"region {region}: {summary.get('channels')} channels, {summary.get('bins')} bins, "
                f"{summary.get('samples')} samples, modifiers: {mods}; "
                f"{summary.get('parameters')} parameters, POI {summary.get('poi')}, "
                f"{summary.get('signal_points')} signal points"
            )
        errors = len(report.errors)
        warnings = len(report.problems) - errors
        verdict = "VALID" if report.valid else "INVALID"
        self.stdout.write(f"{verdict}: {errors} error(s), {warnings} warning(s)")
