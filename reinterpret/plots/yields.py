"""Yields per channel (stacked samples, data with error bars, the prediction's uncertainty
band) and the pulls of the post-fit nuisance parameters, from fitter.postfit.fit_detail."""

from __future__ import annotations

import math

import numpy as np
from matplotlib.patches import Patch

from reinterpret.plots.render import PlotError, render

# Colour-blind friendly qualitative palette (Petroff 10, adopted by CMS for its plots).
PALETTE = [
    "#3f90da",
    "#ffa90e",
    "#bd1f01",
    "#94a4a2",
    "#832db6",
    "#a96b59",
    "#e76300",
    "#b9ac70",
    "#717581",
    "#92dadd",
]


SIGNAL = "#d62728"


def _short(text: str, width: int = 28) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def sample_colours(detail: dict) -> dict[str, str]:
    """One colour per sample name over all channels of the model, so a sample has the same
    colour in every channel and in the pre- and post-fit plots."""
    names = sorted(
        {
            s
            for stage in ("prefit", "postfit")
            for ch in detail[stage]["samples"].values()
            for s in ch
        }
    )
    return {n: PALETTE[i % len(PALETTE)] for i, n in enumerate(names)}


def _poisson_interval(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper 68.3% (Garwood) error bar lengths of observed counts."""
    from scipy.stats import chi2

    lo = np.where(counts > 0, counts - chi2.ppf(0.158655, 2 * counts) / 2, 0.0)
    hi = chi2.ppf(1 - 0.158655, 2 * (counts + 1)) / 2 - counts
    return np.nan_to_num(lo), hi


def yields_plot(detail: dict, channel: str, stage: str = "postfit", fmt: str = "svg") -> bytes:
    """One channel's yields per bin at a stage ("prefit" or "postfit")."""
    if stage not in ("prefit", "postfit"):
        raise PlotError(f"unknown stage {stage!r}; use prefit or postfit")
    if channel not in detail["observed"]:
        raise PlotError(f"no channel {channel!r}; the channels are {sorted(detail['observed'])}")
    samples = detail[stage]["samples"].get(channel, {})
    observed = np.asarray(detail["observed"][channel], dtype=float)
    total = np.asarray(detail[stage]["total"][channel], dtype=float)
    band = detail[stage]["uncertainty"].get(channel)
    colours = sample_colours(detail)
    signal = set(detail.get("signal_samples", []))
    nbins = len(observed)
    edges = np.arange(nbins + 1)
    centres = edges[:-1] + 0.5

    def draw(fig) -> None:
        ax = fig.subplots()
        base = np.zeros(nbins)
        # Backgrounds with the largest at the bottom of the stack, as in papers; the signal
        # on top, outlined in red.
        order = sorted(samples, key=lambda n: (n in signal, -sum(samples[n])))
        for name in order:
            values = np.clip(np.asarray(samples[name], dtype=float), 0.0, None)
            if name in signal:
                ax.stairs(
                    base + values,
                    edges,
                    baseline=base,
                    fill=True,
                    facecolor="#f4a3a3",
                    edgecolor=SIGNAL,
                    linewidth=1.6,
                    label=_short(f"Signal ({name})"),
                )
            else:
                ax.stairs(
                    base + values,
                    edges,
                    baseline=base,
                    fill=True,
                    color=colours[name],
                    label=_short(name),
                )
            base += values
        ax.stairs(total, edges, color="black", linewidth=0.8)
        handles, names = ax.get_legend_handles_labels()
        if band is not None:
            err = np.asarray(band, dtype=float)
            ax.stairs(
                total + err,
                edges,
                baseline=np.clip(total - err, 0.0, None),
                fill=True,
                facecolor="none",
                edgecolor="#444444",
                hatch="////",
                linewidth=0,
            )
            handles.append(Patch(facecolor="none", edgecolor="#444444", hatch="////"))
            names.append("Uncertainty" + (" (post-fit)" if stage == "postfit" else " (pre-fit)"))
        lo, hi = _poisson_interval(observed)
        data = ax.errorbar(
            centres, observed, yerr=[lo, hi], fmt="o", color="black", markersize=4, label="Data"
        )
        handles.insert(0, data)
        names.insert(0, "Data")
        ax.set_xticks(centres, [str(i) for i in range(nbins)])
        ax.set_xlim(0, nbins)
        ax.set_xlabel(f"{channel} bin")
        ax.set_ylabel("Events")
        top = max(
            float(np.max(total + (np.asarray(band) if band else 0))), float(np.max(observed + hi))
        )
        ax.set_ylim(0, top * 1.6 if top > 0 else 1.0)
        ax.legend(
            handles, names, loc="upper right", fontsize="x-small", ncols=2 if len(names) > 6 else 1
        )
        ax.set_title(
            f"{channel}, {'pre-fit' if stage == 'prefit' else 'post-fit'}",
            fontsize="medium",
            loc="left",
        )

    return render(draw, fmt, (5.6, 4.2))


def pulls_plot(detail: dict, fmt: str = "svg") -> bytes:
    """The fitted constrained parameters as pulls (theta_hat - centre) / width with error bars
    error / width, against the ±1σ and ±2σ bands; the unconstrained ones (normalisation
    factors and the POI) in a second panel as value ± error."""
    pars = [p for p in detail["parameters"] if not p["fixed"] and p["value"] is not None]
    pulled = [p for p in pars if p["constraint"] != "none" and p["width"]]
    free = [p for p in pars if p["constraint"] == "none"]
    if not pars:
        raise PlotError("the model has no fitted parameter")
    height = max(3.0, 0.16 * (len(pulled) + len(free)) + 1.6)

    def draw(fig) -> None:
        ratios = [max(len(pulled), 1), max(len(free), 1)]
        axes = fig.subplots(2, 1, height_ratios=ratios) if free and pulled else [fig.subplots()]
        if pulled:
            ax = axes[0]
            y = np.arange(len(pulled))[::-1]
            value = np.array([(p["value"] - p["centre"]) / p["width"] for p in pulled])
            err = np.array(
                [p["error"] / p["width"] if p["error"] is not None else np.nan for p in pulled]
            )
            ax.axvspan(-2, 2, color="#ffdf00", zorder=0)
            ax.axvspan(-1, 1, color="#33cc33", zorder=0)
            ax.axvline(0, color="black", linewidth=0.6)
            ax.errorbar(value, y, xerr=np.nan_to_num(err), fmt="o", color="black", markersize=3)
            ax.set_yticks(y, [p["name"] for p in pulled], fontsize=6)
            bound = max(3.0, math.ceil(np.nanmax(np.abs(value) + np.nan_to_num(err))) + 0.5)
            ax.set_xlim(-bound, bound)
            ax.set_ylim(-0.7, len(pulled) - 0.3)
            ax.tick_params(axis="y", which="minor", left=False, right=False)
            ax.set_xlabel(r"$(\hat\theta - \theta_0) / \Delta\theta$")
            ax.set_title("Pulls of the constrained parameters", fontsize="small", loc="left")
        if free:
            ax = axes[-1]
            y = np.arange(len(free))[::-1]
            value = np.array([p["value"] for p in free])
            err = np.array([p["error"] if p["error"] is not None else np.nan for p in free])
            ax.axvline(1.0, color="#888888", linewidth=0.6, linestyle="--")
            ax.errorbar(value, y, xerr=np.nan_to_num(err), fmt="s", color="#1f3f9f", markersize=3)
            ax.set_yticks(y, [p["name"] + (" (POI)" if p["poi"] else "") for p in free], fontsize=6)
            ax.set_ylim(-0.7, len(free) - 0.3)
            ax.tick_params(axis="y", which="minor", left=False, right=False)
            ax.set_xlabel("fitted value")
            ax.set_title("Unconstrained parameters", fontsize="small", loc="left")

    return render(draw, fmt, (6.0, height))
