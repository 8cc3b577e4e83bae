"""Template filters that write result numbers the way reinterpret.formatting does."""

from __future__ import annotations

from django import template

from reinterpret import formatting

register = template.Library()


@register.filter
def sig(value, digits: int = 3) -> str:
    """A number to `digits` significant digits ("–" when missing)."""
    return formatting.number(value, int(digits))


@register.filter
def cls(value) -> str:
    """A CLs value: 3 significant digits, "< 1e-6" below the floor."""
    return formatting.cls(value)
