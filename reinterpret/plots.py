"""SVG plots of yields: per channel, stacked samples against the observed counts."""

from __future__ import annotations

from html import escape

PALETTE = [
    "#4e79a7",
    "#f28e2b",
    "#59a14f",
    "#e15759",
    "#76b7b2",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
]


def stacked_yields_svg(
    title: str,
    samples: dict[str, list[float]],
    observed: list[float],
    width: int = 420,
    height: int = 260,
) -> str:
    """Bars per bin stacked by sample (largest at the bottom), observed counts as dots."""
    names = sorted(samples, key=lambda n: -sum(samples[n]))
    # Colours follow the sample names, so pre- and post-fit plots of a channel agree.
    colour = {n: PALETTE[i % len(PALETTE)] for i, n in enumerate(sorted(samples))}
    nbins = len(observed)
    totals = [sum(samples[n][b] for n in names) for b in range(nbins)]
    top = max(max(totals, default=1.0), max(observed, default=1.0)) * 1.15 or 1.0
    left, bottom, right, header = 50, 30, 130, 28
    plot_w, plot_h = width - left - right, height - bottom - header
    bar_w = plot_w / max(nbins, 1)

    def y(v):
        return header + plot_h - v / top * plot_h

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="sans-serif" font-size="11" role="img" aria-label="{escape(title)}">',
        f'<text x="{left}" y="16" font-weight="bold">{escape(title)}</text>',
        f'<line x1="{left}" y1="{header + plot_h}" x2="{left + plot_w}" '
        f'y2="{header + plot_h}" stroke="black"/>',
        f'<line x1="{left}" y1="{header}" x2="{left}" y2="{header + plot_h}" stroke="black"/>',
        f'<text x="{left - 4}" y="{header + 4}" text-anchor="end">{top:.3g}</text>',
        f'<text x="{left - 4}" y="{header + plot_h}" text-anchor="end">0</text>',
    ]
    for b in range(nbins):
        base = 0.0
        for name in names:
            v = max(samples[name][b], 0.0)
            parts.append(
                f'<rect x="{left + b * bar_w + 2:.1f}" y="{y(base + v):.1f}" '
                f'width="{bar_w - 4:.1f}" height="{y(base) - y(base + v):.1f}" '
                f'fill="{colour[name]}"><title>{escape(name)} bin {b}: '
                f"{v:.4g}</title></rect>"
            )
            base += v
        cx = left + (b + 0.5) * bar_w
        parts.append(
            f'<circle cx="{cx:.1f}" cy="{y(observed[b]):.1f}" r="4" fill="black">'
            f"<title>observed bin {b}: {observed[b]:g}</title></circle>"
        )
        parts.append(
            f'<text x="{cx:.1f}" y="{header + plot_h + 14}" text-anchor="middle">{b}</text>'
        )
    for i, name in enumerate(names[:10]):
        ly = header + 12 * i
        parts.append(
            f'<rect x="{width - right + 8}" y="{ly}" width="10" height="10" fill="{colour[name]}"/>'
        )
        parts.append(f'<text x="{width - right + 22}" y="{ly + 9}">{escape(name[:18])}</text>')
    parts.append(
        f'<circle cx="{width - right + 13}" cy="{header + 12 * min(len(names), 10) + 5}" '
        'r="4" fill="black"/>'
    )
    parts.append(
        f'<text x="{width - right + 22}" y="{header + 12 * min(len(names), 10) + 9}">data</text>'
    )
    parts.append("</svg>")
    return "\n".join(parts)
