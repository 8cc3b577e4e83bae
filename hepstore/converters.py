"""URL path converters: database ids that fit in a 64-bit integer column.

Django's <int:...> accepts any number of digits, and a 20-digit id reaches the database as an
integer it cannot hold (an OverflowError, a 500 on SQLite). An id of at most 18 digits is
always representable; a longer one matches no URL and answers 404.
"""

from __future__ import annotations

from django.urls import register_converter

ID_REGEX = "[0-9]{1,18}"


class IdConverter:
    regex = ID_REGEX

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return str(value)


register_converter(IdConverter, "id")
