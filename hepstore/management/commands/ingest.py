"""python manage.py ingest PATH --title T --collaboration C [--inspire N] ... (all or nothing)"""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from hepstore.errors import HepstoreError
from hepstore.services import Publication, ingest_paths, parse_label_info


class Command(BaseCommand):
    help = "Validate, store and index a likelihood submission; nothing is stored if invalid."

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="+", metavar="PATH")
        parser.add_argument("--title", required=True)
        parser.add_argument("--collaboration", required=True)
        parser.add_argument("--abstract", default="")
        parser.add_argument("--inspire", type=int)
        parser.add_argument("--arxiv", default="")
        parser.add_argument("--doi", default="")
        parser.add_argument("--year", type=int)
        parser.add_argument("--keywords", nargs="*", default=[])
        parser.add_argument("--note", default="")
        parser.add_argument(
            "--label-title",
            action="append",
            default=[],
            metavar="LABEL=TITLE",
            help="axis title of a signal label, e.g. msb='m(b1)' (repeatable)",
        )
        parser.add_argument(
            "--label-unit",
            action="append",
            default=[],
            metavar="LABEL=UNIT",
            help="unit of a signal label, e.g. msb=GeV (repeatable)",
        )
        parser.add_argument(
            "--caveat",
            action="append",
            default=[],
            metavar="TEXT",
            help="a note shown with the likelihood's results (repeatable)",
        )

    def handle(self, *args, **opts):
        try:
            info = parse_label_info(opts["label_title"], "title")
            for label, entry in parse_label_info(opts["label_unit"], "unit").items():
                info.setdefault(label, {}).update(entry)
        except HepstoreError as exc:
            raise CommandError(exc.message) from exc
        publication = Publication(
            title=opts["title"],
            collaboration=opts["collaboration"],
            abstract=opts["abstract"],
            inspire_id=opts["inspire"],
            arxiv_id=opts["arxiv"],
            doi=opts["doi"],
            keywords=tuple(opts["keywords"]),
            year=opts["year"],
            label_info=info,
            notes=tuple(opts["caveat"]),
        )
        try:
            report, version = ingest_paths(
                [Path(p) for p in opts["paths"]], publication, note=opts["note"]
            )
        except HepstoreError as exc:
            raise CommandError(exc.message) from exc
        for p in report.problems:
            self.stderr.write(f"{p.severity.upper():8} {p.file}#{p.pointer}: {p.message}")
        if version is None:
            raise CommandError(f"not ingested: {len(report.errors)} error(s); nothing was stored")
        regions = ", ".join(lh.region for lh in version.likelihoods.all())
        self.stdout.write(
            f"ingested {version.analysis.title!r} as version {version.number} "
            f"(analysis {version.analysis.pk}; regions: {regions})"
        )
