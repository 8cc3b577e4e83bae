"""Typed filters of the jobs list (a bad value is a 400 naming the parameter)."""

from __future__ import annotations

import django_filters

from hepstore.api.filters import IdFilter
from reinterpret.models import Job, JobKind, JobState


class JobFilterSet(django_filters.FilterSet):
    likelihood = IdFilter(field_name="likelihood_id", help_text="id of the likelihood")
    kind = django_filters.ChoiceFilter(choices=JobKind.choices)
    state = django_filters.ChoiceFilter(choices=JobState.choices)

    class Meta:
        model = Job
        fields = ["likelihood", "kind", "state"]
