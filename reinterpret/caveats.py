"""Caveats of a likelihood: the submitter's notes and the portal's own checks of the model,
shown on its pages and served by the API beside the numbers they qualify."""

from __future__ import annotations

# A Poisson constraint tighter than this (tau = (nominal / uncertainty)^2) is where pyhf's
# default optimizer (scipy SLSQP without analytic gradients) has been seen to stop at its
# initial point: on the published erjr likelihood (tau ~ 1.9e11) for almost every patch.
TIGHT_TAU = 1e8


def portal_checks(workspace: dict) -> list[dict]:
    """Notes {"source": "portal", "text"} on features of a workspace that affect how its
    numbers compare with other tools."""
    notes = []
    for channel in workspace.get("channels", []):
        for sample in channel.get("samples", []):
            for modifier in sample.get("modifiers", []):
                if modifier.get("type") != "shapesys":
                    continue
                for i, (nominal, sigma) in enumerate(
                    zip(sample.get("data", []), modifier.get("data") or [], strict=False)
                ):
                    if not (nominal > 0 and sigma > 0):
                        continue
                    tau = (nominal / sigma) ** 2
                    if tau > TIGHT_TAU:
                        notes.append(
                            {
                                "source": "portal",
                                "text": (
                                    f"shapesys {modifier['name']!r} ({channel['name']}, "
                                    f"bin {i}, sample {sample['name']}) has a relative "
                                    f"uncertainty of {sigma / nominal:.2g} (Poisson constraint "
                                    f"tau = {tau:.2g}). pyhf's default optimizer is known to "
                                    "stop at its initial point on such likelihoods, so its "
                                    "numbers here can differ from this portal's, whose fits "
                                    "reach a lower -2 log L (shown with every result)."
                                ),
                            }
                        )
    return notes


def likelihood_notes(likelihood, workspace: dict) -> list[dict]:
    """The submitter's notes, then the portal's checks."""
    submitted = [
        {"source": "submitter", "text": str(text)}
        for text in getattr(likelihood, "notes", []) or []
    ]
    return submitted + portal_checks(workspace)
