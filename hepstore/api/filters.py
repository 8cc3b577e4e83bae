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


class FilterBackend(DjangoFilterBackend):
    """DjangoFilterBackend whose refusals use the API's envelope with one problem per
    parameter."""

    def filter_queryset(self, request, queryset, view):
        filterset = self.get_filterset(request, queryset, view)
        if filterset is None:
            return queryset
        refused = {}
        for name, filter_ in filterset.base_filters.items():
            values = request.query_params.getlist(name)
            # Each filter takes one value: a repeated one would otherwise be decided silently
            # by the last occurrence.
            if len(values) > 1 and not issubclass(filter_.field_class, forms.MultipleChoiceField):
                refused[name] = ["give this parameter once"]
            # The schema types a whole-number filter as an integer; django-filter would take an
            # empty value as "no filter".
            elif values == [""] and issubclass(filter_.field_class, forms.IntegerField):
                refused[name] = ["give a whole number or leave the parameter out"]
        if refused:
            raise BadParameters.from_form_errors(refused)
        if not filterset.is_valid():
            raise BadParameters.from_form_errors(filterset.errors)
        return filterset.qs


class AnalysisFilterSet(django_filters.FilterSet):
    collaboration = django_filters.CharFilter(
        field_name="collaboration__name", lookup_expr="iexact", help_text="collaboration name"
    )
    inspire_id = IdFilter(max_value=2**31 - 1, help_text="INSPIRE record id")
    year = IdFilter(min_value=0, max_value=9999, help_text="publication year")
    q = django_filters.CharFilter(method="filter_text", help_text="words in title or abstract")

    class Meta:
        model = Analysis
        fields = ["collaboration", "inspire_id", "year", "q"]

    def filter_text(self, queryset, name, value):
        from django.db.models import Q

        for word in value.split():
            queryset = queryset.filter(Q(title__icontains=word) | Q(abstract__icontains=word))
        return queryset
