"""Request body parsing for the API: JSON read strictly and within bounds."""

from __future__ import annotations

from django.conf import settings
from rest_framework.parsers import JSONParser

from hepstore import jsonio
from hepstore.errors import TooLarge


class StrictJSONParser(JSONParser):
    """JSON bodies up to HEPSTORE_MAX_JSON_BODY_BYTES, parsed by hepstore.jsonio: no NaN or
    Infinity literals, nesting bounded (a body nested 100,000 levels is a 400, not a crash),
    and each mistake reported with its line and column."""

    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.HEPSTORE_MAX_JSON_BODY_BYTES
        data = stream.read(limit + 1) if stream is not None else b""
        if len(data) > limit:
            raise TooLarge(f"the JSON body is larger than the limit of {limit // 1024} KiB")
        return jsonio.loads(data)
