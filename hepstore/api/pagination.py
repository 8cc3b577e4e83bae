"""One list envelope for the whole API: {"count", "next", "previous", "results"}, paged by
?page= and ?page_size= (up to HEPSTORE_API_MAX_PAGE_SIZE), both typed."""

from __future__ import annotations

from django.conf import settings
from rest_framework.pagination import PageNumberPagination

from hepstore.api.filters import check_single_values
from hepstore.errors import BadParameters

MAX_PAGE = 10**6


def positive_int(request, name: str, upper: int) -> int | None:
    """The integer query parameter name, None when absent; BadParameters unless 1..upper."""
    check_single_values(request, [name], {name})
    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= upper:
        raise BadParameters(
            f"invalid query parameter {name}: "
            f"must be a whole number from 1 to {upper}, got {raw!r}",
            [{"parameter": name, "severity": "error", "message": f"a whole number 1..{upper}"}],
        )
    return value


class Pagination(PageNumberPagination):
    page_size_query_param = "page_size"

    @property
    def max_page_size(self) -> int:  # read per request so that tests may change it
        return settings.HEPSTORE_API_MAX_PAGE_SIZE

    def get_page_size(self, request) -> int:
        """?page_size= honoured up to the maximum (larger values are cut to it)."""
        size = positive_int(request, self.page_size_query_param, 2**31 - 1)
        return min(size or self.page_size, self.max_page_size)

    def paginate_queryset(self, queryset, request, view=None):
        positive_int(request, self.page_query_param, MAX_PAGE)
        return super().paginate_queryset(queryset, request, view)

    def get_schema_operation_parameters(self, view):
        return [
            {
                "name": self.page_query_param,
                "required": False,
                "in": "query",
                "description": "page number (1-based); beyond the last page: 404",
                "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE},
            },
            {
                "name": self.page_size_query_param,
                "required": False,
                "in": "query",
                "description": f"results per page (default {self.page_size}; "
                "values above the maximum, HEPSTORE_API_MAX_PAGE_SIZE, are cut to it)",
                "schema": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1},
            },
        ]
