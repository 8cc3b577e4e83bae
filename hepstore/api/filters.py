"""Typed query filters of the archive API (django-filter FilterSets).

A value of the wrong type or range is a 400 naming the parameter (FilterBackend), never a
database error; the OpenAPI schema declares every filter.
"""

from __future__ import annotations

import django_filters
from django import forms
from django_filters.rest_framework import DjangoFilterBackend

from hepstore.errors import BadParameters
from hepstore.models import Analysis

DB_INT_MAX = 2**63 - 1


class IdFilter(django_filters.NumberFilter):
    """A database id or other whole number that fits the integer columns."""

    field_class = forms.IntegerField

    def __init__(self, *args, min_value: int = 1, max_value: int = DB_INT_MAX, **kwargs):
        kwargs.setdefault("min_value", min_value)
        kwargs.setdefault("max_value", max_value)
        super().__init__(*args, **kwargs)


def check_single_values(request, names, typed) -> None:
    """Each of the named query parameters appears at most once, and those in typed (numbers,
    choices) not empty: otherwise BadParameters naming them."""
    problems = []
    for name in names:
        values = request.query_params.getlist(name)
        if len(values) > 1:
            problems.append((name, f"given {len(values)} times; give it once"))
        elif values == [""] and name in typed:
            problems.append((name, "empty; give a value or leave the parameter out"))
    if problems:
        raise BadParameters(
            "invalid query parameter "
            + "; ".join(f"{name}: {message}" for name, message in problems),
            [{"parameter": n, "severity": "error", "message": m} for n, m in problems],
        )


class FilterBackend(DjangoFilterBackend):
    """DjangoFilterBackend whose refusals use the API's envelope with one problem per
    parameter; a filter given twice, or a typed filter given empty, is refused too."""

    def filter_queryset(self, request, queryset, view):
        if getattr(view, "detail", False):  # filters narrow lists, not one object's URL
            return queryset
        filterset = self.get_filterset(request, queryset, view)
        if filterset is None:
            return queryset
        typed = {
            name
            for name, f in filterset.filters.items()
            if not isinstance(f, django_filters.CharFilter)
        }
        check_single_values(request, filterset.filters, typed)
        if not filterset.is_valid():
            raise BadParameters.from_form_errors(filterset.errors)
        return filterset.qs


class AnalysisFilterSet(django_filters.FilterSet):
    collaboration = django_filters.CharFilter(
        field_name="collaboration__name", lookup_expr="iexact", help_text="collaboration name"
    )
    inspire_id = IdFilter(max_value=2**31 - 1, help_text="INSPIRE record id")
    year = IdFilter(min_value=0, max_value=9999, help_text="publication year")
    q = django_filters.CharFilter(
        method="filter_text", help_text="words, each in the title or abstract or the collaboration"
    )

    class Meta:
        model = Analysis
        fields = ["collaboration", "inspire_id", "year", "q"]

    def filter_text(self, queryset, name, value):
        from django.db.models import Q

        for word in value.split():
            queryset = queryset.filter(
                Q(title__icontains=word)
                | Q(abstract__icontains=word)
                | Q(collaboration__name__iexact=word)
            )
        return queryset
