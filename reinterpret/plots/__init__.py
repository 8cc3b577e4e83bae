"""Figures of results, built with matplotlib in the field's conventions: plain functions that
take result data (dicts as the API serves them) and return the bytes of an SVG, PNG or PDF.
No Django here; views only choose the format.

    exclusion_plot(contour, points, labels, ...)      CLs = 0.05 contours, the SUSY way
    upper_limit_map(contour, points, labels, ...)     observed / expected mu upper limits
    yields_plot(detail, channel, stage, ...)          stacked samples, data, uncertainty band
    pulls_plot(detail, ...)                           post-fit nuisance parameters
"""

from reinterpret.plots.exclusion import exclusion_plot, upper_limit_map
from reinterpret.plots.render import FORMATS, PlotError, axis_title
from reinterpret.plots.yields import pulls_plot, sample_colours, yields_plot

__all__ = [
    "FORMATS",
    "PlotError",
    "axis_title",
    "exclusion_plot",
    "pulls_plot",
    "sample_colours",
    "upper_limit_map",
    "yields_plot",
]
