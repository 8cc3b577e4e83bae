"""python manage.py serve [ADDRPORT] — the web server with the embedded job worker beside it."""

from __future__ import annotations

from django.core.management import call_command
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Serve the portal and run the database-backed job worker in the same process."

    def add_arguments(self, parser):
        parser.add_argument("addrport", nargs="?", default="127.0.0.1:8000")
        parser.add_argument("--no-worker", action="store_true")

    def handle(self, *args, **opts):
        if not opts["no_worker"]:
            import threading

            from hepstore.services import index_pending
            from reinterpret.jobs import start_embedded_worker

            # Versions committed just before a crash, whose indexing never ran.
            threading.Thread(target=index_pending, name="index-pending", daemon=True).start()
            start_embedded_worker()
        call_command("runserver", opts["addrport"], use_reloader=False, use_threading=True)
