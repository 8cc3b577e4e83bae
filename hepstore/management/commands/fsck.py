"""python manage.py fsck [--repair] [--no-verify] — storage consistency check."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from hepstore import fsck
from hepstore.errors import HepstoreError


class Command(BaseCommand):
    help = (
        "Check the blob store against the database: orphan blobs, temporary files left by "
        "interrupted work, missing or corrupt blobs, versions missing from search. With "
        "--repair, remove orphans and temporary files and index the missing versions. "
        "Exit status 1 when something remains wrong."
    )

    def add_arguments(self, parser):
        parser.add_argument("--repair", action="store_true", help="remove and re-index")
        parser.add_argument(
            "--no-verify", action="store_true", help="do not hash every blob's content"
        )
        parser.add_argument(
            "--wait",
            type=float,
            default=30.0,
            help="seconds to wait for running ingestions to finish (default 30)",
        )

    def handle(self, *args, **opts):
        try:
            report = fsck.check(
                repair=opts["repair"], verify=not opts["no_verify"], wait=opts["wait"]
            )
        except HepstoreError as exc:
            raise CommandError(exc.message) from exc
        verb = "removed" if report.repaired else "found"
        for path in report.orphan_blobs:
            self.stdout.write(f"orphan blob ({verb}): {path}")
        for path in report.temporary:
            self.stdout.write(f"temporary file ({verb}): {path}")
        for path in report.unexpected:
            self.stdout.write(f"unexpected file in the blob store (left alone): {path}")
        for sha in report.missing_blobs:
            self.stdout.write(f"MISSING blob named by the database: {sha}")
        for sha in report.corrupt_blobs:
            self.stdout.write(f"CORRUPT blob (content does not match its name): {sha}")
        for pk in report.unindexed_versions:
            state = "indexed now" if report.repaired else "not in search"
            self.stdout.write(f"version {pk}: {state}")
        self.stdout.write(
            f"{len(report.orphan_blobs)} orphan blob(s), {len(report.temporary)} temporary "
            f"file(s), {len(report.missing_blobs)} missing, {len(report.corrupt_blobs)} corrupt, "
            f"{len(report.unindexed_versions)} version(s) missing from search"
            + (f"; repaired ({report.reindexed} indexed)" if report.repaired else "")
        )
        if not report.clean:
            raise SystemExit(1)
