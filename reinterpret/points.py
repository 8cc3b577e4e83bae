"""One signal point as a page and its downloads show it: the result, the fit detail (yields
and parameters before and after the fit), its figures and the caveats of its likelihood.

A point is an archived one (by name) or a theorist's custom signal (by the sha256 of its patch
operations, stored as a blob when it was first evaluated); both get the same view.
"""

from __future__ import annotations

import base64
import logging
import re

from django.core.cache import cache

from hepstore import blobs
from hepstore.errors import NotFound
from reinterpret import caveats, formatting, plots, services
from reinterpret.errors import ReinterpretError
from reinterpret.fitter import FitterError, compile_models
from reinterpret.fitter.postfit import fit_detail

log = logging.getLogger(__name__)
BAND = ("−2σ", "−1σ", "median", "+1σ", "+2σ")


class Point:
    """An archived point (name) or a custom signal (digest of its patch operations)."""

    def __init__(self, likelihood, name: str | None = None, digest: str | None = None):
        self.likelihood = likelihood
        self.name = name
        self.digest = digest
        if name is None and digest is None:
            raise ReinterpretError("a point needs a name or the digest of its patch")
        if digest is not None and (
            not re.fullmatch(r"[0-9a-f]{64}", digest) or not blobs.blob_path(digest).exists()
        ):
            raise NotFound(f"no custom signal {digest[:12]}… has been evaluated here")

    @property
    def label(self) -> str:
        return self.name or f"custom signal {self.digest[:12]}"

    def result(self) -> tuple[dict, bool]:
        if self.name is not None:
            return services.archived_point_result(self.likelihood, self.name)
        return services.cached_evaluation(self.likelihood, None, "custom", patch_digest=self.digest)

    def workspace(self) -> dict:
        if self.name is not None:
            from hepstore.services import patched_workspace

            return patched_workspace(self.likelihood, self.name)
        bkg = blobs.read_json(self.likelihood.background_id)
        return services.apply_patch(bkg, blobs.read_json(self.digest))

    def fit(self) -> dict:
        """fitter.postfit.fit_detail of the point, kept in Django's cache for a day."""
        key = f"fit-detail:{self.likelihood.background_id}:{self.digest or self.name}"
        detail = cache.get(key)
        if detail is None:
            workspace = self.workspace()
            try:
                detail = fit_detail(compile_models([workspace]))
            except FitterError as exc:
                raise ReinterpretError(f"cannot fit the model: {exc}") from exc
            detail["signal_samples"] = signal_samples(workspace)
            cache.set(key, detail, 86400)
        return detail

    def figure(self, kind: str, fmt: str, channel: str | None = None, stage: str = "postfit"):
        """bytes of the "yields" figure of a channel at a stage, or of the "pulls" figure."""
        detail = self.fit()
        if kind == "pulls":
            return plots.pulls_plot(detail, fmt)
        if channel is None:
            channel = detail["channels"][0][0]
        return plots.yields_plot(detail, channel, stage, fmt)


def signal_samples(workspace: dict) -> list[str]:
    """Names of the samples scaled by the parameter of interest (the signal)."""
    poi = workspace["measurements"][0]["config"]["poi"]
    return sorted(
        {
            s["name"]
            for c in workspace["channels"]
            for s in c["samples"]
            if any(m.get("name") == poi for m in s["modifiers"])
        }
    )


def _data_uri(svg: bytes) -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(svg).decode()


def page_context(point: Point) -> dict:
    """Everything the point page shows."""
    likelihood = point.likelihood
    result, cached = point.result()
    # A point that could not be built or fitted has only its error: no fit detail to show.
    detail = point.fit() if result.get("error") is None else None
    bound = result.get("poi_upper_bound") or _poi_bound(likelihood)
    reasons = result.get("null_reasons") or {}
    up_exp = result.get("mu_up_exp") or [None] * 5
    band = []
    for i, label in enumerate(BAND):
        above = formatting.limit_above_bound(result, i)
        band.append(
            {
                "label": label,
                "cls": formatting.cls((result.get("cls_exp") or [None] * 5)[i]),
                "cls_reason": reasons.get(f"cls_exp[{i}]", ""),
                "limit": formatting.limit(up_exp[i], above, bound),
                "limit_reason": "" if above else reasons.get(f"mu_up_exp[{i}]", ""),
            }
        )
    notes = caveats.likelihood_notes(likelihood, blobs.read_json(likelihood.background_id))
    context = {
        "likelihood": likelihood,
        "analysis": likelihood.version.analysis,
        "point": point,
        "name": point.label,
        "result": result,
        "cached": cached,
        "verdict": formatting.verdict(result.get("cls_obs")),
        "cls_obs": formatting.cls(result.get("cls_obs")),
        "cls_obs_reason": reasons.get("cls_obs", ""),
        "mu_up_obs": formatting.limit(
            result.get("mu_up_obs"), formatting.limit_above_bound(result, "obs"), bound
        ),
        "mu_up_obs_reason": reasons.get("mu_up_obs", ""),
        "band": band,
        "detail": detail,
        "notes": notes,
    }
    if detail is None:
        return context
    channels = []
    for channel, _ in detail["channels"]:
        channels.append(
            {
                "name": channel,
                "prefit": _data_uri(plots.yields_plot(detail, channel, "prefit", "svg")),
                "postfit": _data_uri(plots.yields_plot(detail, channel, "postfit", "svg")),
            }
        )
    parameters = [
        {
            **p,
            "pull": (
                formatting.number((p["value"] - p["centre"]) / p["width"])
                if p["width"] and p["value"] is not None and p["centre"] is not None
                else ""
            ),
        }
        for p in detail["parameters"]
    ]
    context.update(
        channels=channels,
        parameters=parameters,
        pulls=_data_uri(plots.pulls_plot(detail, "svg")),
        notes=notes + [{"source": "fit", "text": n} for n in detail["notes"]],
    )
    return context


def _poi_bound(likelihood) -> float | None:
    from reinterpret.figures import poi_upper_bound

    return poi_upper_bound(likelihood)


def background_model_workspace(workspace: dict) -> dict:
    """The background-only workspace as a model the fitter can build: the POI, when no
    sample carries it, is added as a normalisation factor of the first sample and fixed at 1,
    which leaves every yield as published; a POI already present is fixed at its initial
    value. The likelihood page's yields and parameters come from this model."""
    import copy

    ws = copy.deepcopy(workspace)
    config = ws["measurements"][0]["config"]
    poi = config["poi"]
    present = any(
        m.get("name") == poi for c in ws["channels"] for s in c["samples"] for m in s["modifiers"]
    )
    pars = config.setdefault("parameters", [])
    entry = next((p for p in pars if p.get("name") == poi), None)
    if entry is None:
        entry = {"name": poi}
        pars.append(entry)
    if not present:
        ws["channels"][0]["samples"][0]["modifiers"].append(
            {"name": poi, "type": "normfactor", "data": None}
        )
        entry["inits"] = [1.0]
    entry["fixed"] = True
    return ws


def background_detail(likelihood) -> dict:
    """fit_detail of the background-only model (pre-fit: as published; post-fit: fitted to
    the data without signal), kept in Django's cache for a day."""
    key = f"fit-detail:{likelihood.background_id}:background-only"
    detail = cache.get(key)
    if detail is None:
        workspace = background_model_workspace(blobs.read_json(likelihood.background_id))
        try:
            detail = fit_detail(compile_models([workspace]))
        except FitterError as exc:
            raise ReinterpretError(f"cannot build the background-only model: {exc}") from exc
        cache.set(key, detail, 86400)
    return detail
