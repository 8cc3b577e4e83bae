"""python manage.py worker — the database queue's job worker on its own (production without
Redis). SIGTERM or Ctrl-C: stop between chunks, put the running jobs back in the queue at
once, exit 0."""

from __future__ import annotations

import signal

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from reinterpret.jobs.database import Worker


class Command(BaseCommand):
    help = "Run the reinterpretation job worker (database-backed queue) until SIGTERM/SIGINT."

    def add_arguments(self, parser):
        parser.add_argument(
            "--once", action="store_true", help="process the queued jobs, then exit"
        )

    def handle(self, *args, **opts):
        if settings.REDIS_URL:
            raise CommandError(
                "REDIS_URL is set, so jobs go to Celery: run `celery -A hepstore worker` instead"
            )
        from hepstore.services import index_pending

        # Versions committed just before a crash, whose indexing never ran.
        index_pending()
        worker = Worker()

        def stop(signum, frame):
            worker.stop.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        if opts["once"]:
            worker.run_until_idle()
            return
        worker.run_forever()
