"""python manage.py worker — run the job worker on its own (production deployments)."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from reinterpret.jobs import Worker


class Command(BaseCommand):
    help = "Run the reinterpretation job worker (database-backed queue) until interrupted."

    def add_arguments(self, parser):
        parser.add_argument(
            "--once", action="store_true", help="process the queued jobs, then exit"
        )

    def handle(self, *args, **opts):
        from hepstore.services import index_pending

        # Versions committed just before a crash, whose indexing never ran.
        index_pending()
        worker = Worker()
        if opts["once"]:
            worker.run_until_idle()
            return
        try:
            worker.run_forever()
        except KeyboardInterrupt:
            worker.stop.set()
