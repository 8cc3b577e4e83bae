"""python manage.py reindex — rebuild the search index from the database."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from hepstore import search


class Command(BaseCommand):
    help = "Rebuild the search index (database documents, and Elasticsearch when configured)."

    def handle(self, *args, **opts):
        try:
            count = search.reindex()
        except search.SearchUnavailable as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(f"indexed {count} likelihood(s) with the {search.backend().name} backend")
