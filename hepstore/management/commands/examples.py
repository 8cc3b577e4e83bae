"""python manage.py examples — write the generated example likelihoods (and ingest them once)."""

from __future__ import annotations

import json
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from hepstore import examples


class Command(BaseCommand):
    help = "Generate the example search (background-only workspace + patchset) and ingest it."

    def add_arguments(self, parser):
        parser.add_argument("--output", help="directory to write to (default: DATA_DIR/examples)")
        parser.add_argument("--no-ingest", action="store_true", help="only write the files")

    def handle(self, *args, **opts):
        out = Path(opts["output"] or settings.DATA_DIR / "examples") / "RegionA"
        out.mkdir(parents=True, exist_ok=True)
        workspace = examples.background_workspace()
        (out / "BkgOnly.json").write_text(json.dumps(workspace, indent=1))
        (out / "patchset.json").write_text(json.dumps(examples.patchset(workspace), indent=1))
        self.stdout.write(f"wrote {out}/BkgOnly.json and patchset.json")
        if not opts["no_ingest"]:
            from hepstore.services import ingest_example_once

            message = ingest_example_once(out.parent)
            self.stdout.write(message)
