"""The Celery application: `celery -A hepstore worker` finds it here.

Configured from the Django settings (the CELERY_* names in hepstore/settings.py); its tasks
live in `reinterpret.jobs.celery`. Used only when REDIS_URL is set."""

from __future__ import annotations

import os

from celery import Celery
from celery.signals import setup_logging

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hepstore.settings")

app = Celery("hepstore")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.imports = ["reinterpret.jobs.celery"]


@setup_logging.connect
def _django_logging(**kwargs) -> None:
    # The portal's LOGGING (one line per event, LOG_FORMAT) instead of Celery's own set-up.
    import logging.config

    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)
