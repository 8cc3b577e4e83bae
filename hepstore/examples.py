"""Example likelihoods the project generates itself (for the demo portal and the tests).

A small, deterministic two-channel search: a signal region with three bins and a control
region with two, three backgrounds with normsys/histosys/staterror/lumi uncertainties, and
a grid of signal points over two mass labels, as a patchset whose digest verifies.
"""

from __future__ import annotations

import math

from hepstore.jsonio import patchset_digest

LUMI = {
    "name": "lumi",
    "auxdata": [1.0],
    "sigmas": [0.017],
    "bounds": [[0.915, 1.085]],
    "inits": [1.0],
    "fixed": False,
}


def background_workspace(scale: float = 1.0) -> dict:
    def sample(name, data, *mods):
        return {
            "name": name,
            "data": [round(x * scale, 4) for x in data],
            "modifiers": [{"name": "lumi", "type": "lumi", "data": None}, *mods],
        }

    def stat(channel, data):
        return {
            "name": f"staterror_{channel}",
            "type": "staterror",
            "data": [round(0.08 * x * scale, 4) for x in data],
        }

    sr_ttbar = [42.0, 18.5, 6.2]
    sr_wjets = [21.0, 9.0, 2.8]
    sr_other = [5.5, 3.1, 1.2]
    cr_ttbar = [310.0, 152.0]
    cr_wjets = [95.0, 40.0]
    return {
        "version": "1.0.0",
        "channels": [
            {
                "name": "SR_meff",
                "samples": [
                    sample(
                        "ttbar",
                        sr_ttbar,
                        {"name": "mu_ttbar", "type": "normfactor", "data": None},
                        {
                            "name": "JES",
                            "type": "histosys",
                            "data": {
                                "hi_data": [x * 1.06 for x in sr_ttbar],
                                "lo_data": [x * 0.95 for x in sr_ttbar],
                            },
                        },
                        stat("SR_meff", sr_ttbar),
                    ),
                    sample(
                        "wjets",
                        sr_wjets,
                        {"name": "wjets_xsec", "type": "normsys", "data": {"hi": 1.12, "lo": 0.9}},
                        {
                            "name": "JES",
                            "type": "histosys",
                            "data": {
                                "hi_data": [x * 1.04 for x in sr_wjets],
                                "lo_data": [x * 0.97 for x in sr_wjets],
                            },
                        },
                        stat("SR_meff", sr_wjets),
                    ),
                    sample(
                        "other",
                        sr_other,
                        {"name": "other_xsec", "type": "normsys", "data": {"hi": 1.2, "lo": 0.8}},
                    ),
                ],
            },
            {
                "name": "CR_ttbar",
                "samples": [
                    sample(
                        "ttbar",
                        cr_ttbar,
                        {"name": "mu_ttbar", "type": "normfactor", "data": None},
                        {
                            "name": "JES",
                            "type": "histosys",
                            "data": {
                                "hi_data": [x * 1.03 for x in cr_ttbar],
                                "lo_data": [x * 0.98 for x in cr_ttbar],
                            },
                        },
                        stat("CR_ttbar", cr_ttbar),
                    ),
                    sample(
                        "wjets",
                        cr_wjets,
                        {"name": "wjets_xsec", "type": "normsys", "data": {"hi": 1.12, "lo": 0.9}},
                        stat("CR_ttbar", cr_wjets),
                    ),
                ],
            },
        ],
        "observations": [
            {"name": "SR_meff", "data": [round(x * scale) for x in (71.0, 29.0, 9.0)]},
            {"name": "CR_ttbar", "data": [round(x * scale) for x in (401.0, 188.0)]},
        ],
        "measurements": [
            {"name": "NormalMeasurement", "config": {"poi": "mu_SIG", "parameters": [LUMI]}},
        ],
    }


def signal_yields(m1: float, m2: float) -> list[float]:
    """Signal in the three SR bins: falls with the heavy mass, vanishes as m2 -> m1."""
    xsec = 120.0 * math.exp(-(m1 - 300.0) / 180.0)
    acceptance = max(0.0, 1.0 - m2 / m1) ** 1.5
    total = xsec * acceptance
    return [round(total * f, 4) for f in (0.2, 0.35, 0.45)]


def signal_patch(m1: float, m2: float, channel_index: int = 0) -> list[dict]:
    yields = signal_yields(m1, m2)
    sample = {
        "name": "signal",
        "data": yields,
        "modifiers": [
            {"name": "mu_SIG", "type": "normfactor", "data": None},
            {"name": "lumi", "type": "lumi", "data": None},
            {"name": "signal_theory", "type": "normsys", "data": {"hi": 1.1, "lo": 0.9}},
        ],
    }
    return [{"op": "add", "path": f"/channels/{channel_index}/samples/0", "value": sample}]


GRID_M1 = (300, 400, 500, 600, 700, 800)
GRID_M2 = (0, 100, 200)


def patchset(workspace: dict, analysis_id: str = "ins0000001") -> dict:
    patches = []
    for m1 in GRID_M1:
        for m2 in GRID_M2:
            if m2 >= m1:
                continue
            patches.append(
                {
                    "metadata": {"name": f"C1N2_{m1}_{m2}", "values": [m1, m2]},
                    "patch": signal_patch(m1, m2),
                }
            )
    return {
        "metadata": {
            "description": "signal patchset for the example search",
            "digests": {"sha256": patchset_digest(workspace)},
            "labels": ["m1", "m2"],
            "references": {"hepdata": analysis_id},
        },
        "patches": patches,
        "version": "1.0.0",
    }
