"""python manage.py serve [ADDR:PORT] — the one-command embedded run: gunicorn (one process,
threads) serving the portal with its static files, and the database job worker beside it."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

log = logging.getLogger(__name__)


def _bind(addrport: str) -> str:
    if addrport.isdigit():
        return f"127.0.0.1:{addrport}"
    if ":" not in addrport:
        raise CommandError(f"give ADDR:PORT or PORT, not {addrport!r}")
    return addrport


class Command(BaseCommand):
    help = (
        "Serve the portal with gunicorn (one process, several threads) and run the "
        "database-backed job worker in the same process (not with REDIS_URL: Celery runs "
        "the jobs then)."
    )

    def add_arguments(self, parser):
        parser.add_argument("addrport", nargs="?", default="127.0.0.1:8000")
        parser.add_argument("--no-worker", action="store_true", help="do not run jobs here")
        parser.add_argument("--threads", type=int, default=8, help="request threads")
        parser.add_argument(
            "--no-collectstatic",
            action="store_true",
            help="do not (re)collect the static files first (production runs collectstatic "
            "as a deployment step)",
        )

    def handle(self, *args, **opts):
        from gunicorn.app.base import BaseApplication

        bind = _bind(opts["addrport"])
        if not settings.DEBUG and not opts["no_collectstatic"]:
            call_command("collectstatic", interactive=False, verbosity=0)
        embedded_worker = not opts["no_worker"] and not settings.REDIS_URL
        threads = max(1, opts["threads"])

        class Server(BaseApplication):
            def load_config(self):
                self.cfg.set("bind", [bind])
                self.cfg.set("workers", 1)
                self.cfg.set("worker_class", "gthread")
                self.cfg.set("threads", threads)
                # Fits run in this process beside the requests: be patient with heartbeats.
                self.cfg.set("timeout", 300)
                # Long label-value queries fit (gunicorn's default request line is 4094
                # bytes; longer ones get a bare 414 before the application can answer).
                self.cfg.set("limit_request_line", 8190)
                self.cfg.set("graceful_timeout", 10)
                self.cfg.set("accesslog", "-")
                # No control socket: its default path is shared by every gunicorn of the user.
                self.cfg.set("control_socket_disable", True)
                if embedded_worker:
                    self.cfg.set("post_worker_init", _start_worker)
                    self.cfg.set("worker_exit", _stop_worker)

            def load(self):
                from hepstore.wsgi import application

                return application

        self.stdout.write(
            f"serving on http://{bind}/ (DEBUG={settings.DEBUG}, "
            f"jobs: {'embedded worker' if embedded_worker else 'elsewhere'})"
        )
        Server().run()


def _start_worker(gunicorn_worker) -> None:
    # In the gunicorn worker process (after the fork), so its database connections are its own.
    import threading

    from hepstore.services import index_pending
    from reinterpret.jobs.database import start_embedded_worker

    # Versions committed just before a crash, whose indexing never ran.
    threading.Thread(target=index_pending, name="index-pending", daemon=True).start()
    gunicorn_worker.job_worker = start_embedded_worker()


def _stop_worker(server, gunicorn_worker) -> None:
    """On shutdown, put the jobs this process was running back in the queue at once."""
    job_worker = getattr(gunicorn_worker, "job_worker", None)
    if job_worker is not None:
        from reinterpret.jobs.database import requeue_worker

        job_worker.shutdown(timeout=5)
        count = requeue_worker(job_worker.name)
        log.info("embedded job worker stopped; %d running job(s) re-queued", count)
