"""Combining workspaces (reinterpret.fitter.combine): correlation policy, clashes reported with
their pointers, merged measurements, signal points matched across members."""

from __future__ import annotations

import copy

import pytest

from hepstore import examples
from hepstore.patching import apply
from reinterpret.fitter import InferenceOptions, compile_models, hypotest
from reinterpret.fitter.combine import (
    CombinationError,
    Combiner,
    Member,
    Policy,
    Preference,
    Rename,
    combine,
)
from reinterpret.fitter.combine_points import Grid, match_points


def region(channel_suffix: str = "", scale: float = 1.0) -> dict:
    """The example workspace; with a suffix, its channels (and their staterrors) renamed."""
    ws = copy.deepcopy(examples.background_workspace(scale))
    if channel_suffix:
        for channel in ws["channels"]:
            old = channel["name"]
            channel["name"] = old + channel_suffix
            for sample in channel["samples"]:
                for mod in sample["modifiers"]:
                    if mod["name"] == f"staterror_{old}":
                        mod["name"] = f"staterror_{old}{channel_suffix}"
        for obs in ws["observations"]:
            obs["name"] += channel_suffix
    return ws


def with_signal(ws: dict, m1=500, m2=100) -> dict:
    return apply(ws, examples.signal_patch(m1, m2))


def parameters_of(ws: dict) -> set[str]:
    return {m["name"] for c in ws["channels"] for s in c["samples"] for m in s["modifiers"]}


def errors(report_or_exc) -> list:
    return [p for p in report_or_exc.problems if p.severity == "error"]


def test_parameters_with_one_name_are_one_parameter_by_default():
    a, b = region(), region("_B", 1.3)
    ws = combine([Member("A", a), Member("B", b)])
    assert [c["name"] for c in ws["channels"]] == ["SR_meff", "CR_ttbar", "SR_meff_B", "CR_ttbar_B"]
    assert "lumi" in parameters_of(ws) and "lumi_A" not in parameters_of(ws)
    assert ws["measurements"][0]["config"]["poi"] == "mu_SIG"
    assert [p["name"] for p in ws["measurements"][0]["config"]["parameters"]] == ["lumi"]
    assert ws["version"] == "1.0.0"


def test_clashing_channels_are_refused_with_their_pointer_until_renamed():
    combiner = Combiner([Member("A", region()), Member("B", region(scale=1.3))])
    assert not combiner.report.valid
    clashes = errors(combiner.report)
    assert {(p.file, p.pointer) for p in clashes} == {
        ("B", "/channels/0/name"),
        ("B", "/channels/1/name"),
    }
    assert "SR_meff" in clashes[0].message and "--rename B:SR_meff=" in clashes[0].message
    with pytest.raises(CombinationError) as info:
        combiner.workspace()
    assert len(errors(info.value)) == 2

    policy = Policy(
        renames=(
            Rename("SR_meff", "SR_meff_B", "B"),
            Rename("CR_ttbar", "CR_ttbar_B", "B"),
        ),
        decorrelate=("staterror_SR_meff", "staterror_CR_ttbar"),
    )
    ws = combine([Member("A", region()), Member("B", region(scale=1.3))], policy)
    assert [o["name"] for o in ws["observations"]][2:] == ["SR_meff_B", "CR_ttbar_B"]
    assert {"staterror_SR_meff_A", "staterror_SR_meff_B"} <= parameters_of(ws)


def test_shared_staterror_is_a_warning_not_silent():
    policy = Policy(renames=(Rename("SR_meff", "SR2", "B"), Rename("CR_ttbar", "CR2", "B")))
    combiner = Combiner([Member("A", region()), Member("B", region())], policy)
    assert combiner.report.valid
    warned = [p for p in combiner.report.problems if "staterror_SR_meff" in p.message]
    assert warned and warned[0].severity == "warning"


def test_decorrelated_lumi_becomes_one_normsys_per_member_valid_for_pyhf():
    a, b = region(), region("_B")
    combiner = Combiner([Member("A", a), Member("B", b)], Policy(decorrelate=("lumi",)))
    ws = combiner.workspace()
    names = parameters_of(ws)
    assert {"lumi_A", "lumi_B"} <= names and "lumi" not in names
    # HistFactory JSON 1.0.0 calls a lumi modifier "lumi" and nothing else: the copies are
    # normsys modifiers with the member's sigma, and lumi's bounds/aux/sigmas are dropped.
    mods = [m for c in ws["channels"] for s in c["samples"] for m in s["modifiers"]]
    copies = [m for m in mods if m["name"] in ("lumi_A", "lumi_B")]
    assert {m["type"] for m in copies} == {"normsys"}
    assert copies[0]["data"] == {"hi": pytest.approx(1.017), "lo": pytest.approx(0.983)}
    settings = {p["name"]: p for p in ws["measurements"][0]["config"]["parameters"]}
    assert settings == {
        "lumi_A": {"name": "lumi_A", "fixed": False},
        "lumi_B": {"name": "lumi_B", "fixed": False},
    }
    assert any("normsys 'lumi_B'" in p.message for p in combiner.report.problems)
    pyhf = pytest.importorskip("pyhf")
    pyhf.Workspace(ws)  # valid under pyhf's own schema
    # A signal point compiles: the signal added to member A follows A's luminosity.
    point = combiner.point([with_signal(a), with_signal(b)])
    pyhf.Workspace(point)
    signal = point["channels"][0]["samples"][0]
    assert [m["name"] for m in signal["modifiers"]][:2] == ["mu_SIG", "lumi_A"]
    single = compile_models([with_signal(a)]).npars
    # Everything but the POI, mu_ttbar, JES, the cross sections and the signal theory
    # uncertainty (shared) is counted twice.
    assert compile_models([point]).npars == 2 * single - 6


def test_a_lumi_without_sigma_cannot_be_decorrelated():
    b = region("_B")
    del b["measurements"][0]["config"]["parameters"][0]["sigmas"]
    combiner = Combiner([Member("A", region()), Member("B", b)], Policy(decorrelate=("lumi",)))
    (problem,) = errors(combiner.report)
    assert (problem.file, problem.pointer) == ("B", "/measurements/0/config/parameters/0")
    assert "sigmas" in problem.message


def test_correlate_only_decorrelates_every_other_shared_parameter_but_the_poi():
    a, b = with_signal(region()), with_signal(region("_B"))
    ws = combine([Member("A", a), Member("B", b)], Policy(correlate_only=("lumi",)))
    names = parameters_of(ws)
    assert {"lumi", "mu_SIG", "JES_A", "JES_B", "mu_ttbar_A", "signal_theory_B"} <= names
    assert not {"JES", "mu_ttbar", "lumi_A", "mu_SIG_A"} & names


def without_lumi(ws: dict) -> dict:
    ws = copy.deepcopy(ws)
    for channel in ws["channels"]:
        for sample in channel["samples"]:
            sample["modifiers"] = [m for m in sample["modifiers"] if m["type"] != "lumi"]
    ws["measurements"][0]["config"]["parameters"] = []
    return ws


def test_two_identical_fully_decorrelated_copies_double_the_likelihood():
    # Without lumi: its decorrelated copies would be normsys, whose constraint term has
    # another normalisation, so -2 log L would not simply double.
    ws = without_lumi(with_signal(region()))
    renamed = Rename("SR_meff", "SR_meff_B", "B"), Rename("CR_ttbar", "CR_ttbar_B", "B")
    with pytest.raises(CombinationError):
        combine([Member("A", ws), Member("B", ws)], Policy(correlate_only=()))
    combined = combine(
        [Member("A", ws), Member("B", ws)], Policy(correlate_only=(), renames=renamed)
    )
    (alone,) = hypotest(compile_models([ws]), InferenceOptions())
    (both,) = hypotest(compile_models([combined]), InferenceOptions())
    assert alone.converged and both.converged
    # L(mu, a, b) = L1(mu, a) L1(mu, b): the same best-fit mu, twice -2 log L.
    assert both.mu_hat == pytest.approx(alone.mu_hat, abs=2e-3)
    assert both.twice_nll == pytest.approx(2 * alone.twice_nll, abs=2e-3)
    assert both.cls_exp[2] < alone.cls_exp[2]  # twice the data: more sensitive


def test_different_pois_are_refused_until_renamed():
    b = region("_B")
    b["measurements"][0]["config"]["poi"] = "mu_Sig"
    combiner = Combiner([Member("A", region()), Member("B", b)])
    (problem,) = errors(combiner.report)
    assert (problem.file, problem.pointer) == ("B", "/measurements/0/config/poi")
    assert "'mu_Sig'" in problem.message and "--rename B:mu_Sig=mu_SIG" in problem.message
    renamed = Combiner(
        [Member("A", region()), Member("B", b)], Policy(renames=(Rename("mu_Sig", "mu_SIG", "B"),))
    )
    assert renamed.report.valid
    assert renamed.workspace()["measurements"][0]["config"]["poi"] == "mu_SIG"


def test_disagreeing_settings_are_refused_unless_the_policy_says_who_wins():
    b = region("_B")
    b["measurements"][0]["config"]["parameters"][0]["sigmas"] = [0.02]
    combiner = Combiner([Member("A", region()), Member("B", b)])
    (problem,) = errors(combiner.report)
    assert problem.pointer == "/measurements/0/config/parameters/0/sigmas"
    assert "0.017" in problem.message and "--prefer lumi=A" in problem.message
    for winner, sigma in (("A", 0.017), ("B", 0.02)):
        policy = Policy(prefer=(Preference(winner, "lumi"),))
        combiner = Combiner([Member("A", region()), Member("B", b)], policy)
        assert combiner.report.valid
        (lumi,) = combiner.workspace()["measurements"][0]["config"]["parameters"]
        assert lumi["sigmas"] == [sigma] and lumi["bounds"] == [[0.915, 1.085]]
        assert any("wins" in p.message for p in combiner.report.problems)


def test_incompatible_uses_of_one_name_are_refused():
    b = region("_B")
    b["channels"][0]["samples"][0]["modifiers"][1] = {
        "name": "mu_ttbar",
        "type": "normsys",
        "data": {"hi": 1.1, "lo": 0.9},
    }
    combiner = Combiner([Member("A", region()), Member("B", b)])
    (problem,) = errors(combiner.report)
    assert problem.pointer == "/channels/0/samples/0/modifiers/1"
    assert "mu_ttbar" in problem.message and "normfactor" in problem.message


def test_a_decorrelated_copy_may_not_take_an_existing_name():
    b = region("_B")
    b["channels"][0]["samples"][2]["modifiers"][1]["name"] = "JES_A"
    combiner = Combiner([Member("A", region()), Member("B", b)], Policy(decorrelate=("JES",)))
    assert any("'JES_A'" in p.message for p in errors(combiner.report))


def test_policy_mistakes_are_reported_against_the_policy():
    combiner = Combiner(
        [Member("A", region()), Member("B", region("_B"))],
        Policy(
            decorrelate=("mu_SIG", "not_there"),
            renames=(Rename("nothing", "x", "A"), Rename("a", "b", "Z")),
        ),
    )
    where = {(p.file, p.pointer, p.severity) for p in combiner.report.problems}
    assert ("policy", "/decorrelate/0", "error") in where  # the POI is one parameter
    assert ("policy", "/decorrelate/1", "warning") in where
    assert ("policy", "/renames/0", "error") in where
    assert ("policy", "/renames/1", "error") in where
    with pytest.raises(CombinationError) as info:
        Policy.from_dict({"decorrelate": "lumi", "renames": [{"old": 1}], "bogus": 1})
    pointers = {p.pointer for p in info.value.problems}
    assert pointers == {"/decorrelate", "/renames/0", "/bogus"}
    policy = Policy(decorrelate=("lumi",), renames=(Rename("a", "b", "B"),))
    assert Policy.from_dict(policy.as_dict()) == policy


def test_signal_points_share_the_unchanged_samples_of_the_combined_background():
    a, b = region(), region("_B")
    combiner = Combiner([Member("A", a), Member("B", b)], Policy(decorrelate=("lumi",)))
    background = combiner.workspace()
    point = combiner.point([with_signal(a), b])
    assert point["channels"][0]["samples"][0]["name"] == "signal"
    assert point["channels"][0]["samples"][1] is background["channels"][0]["samples"][0]
    assert point["channels"][2] is background["channels"][2] or (
        point["channels"][2]["samples"][0] is background["channels"][2]["samples"][0]
    )
    lumi = [m["name"] for m in point["channels"][0]["samples"][0]["modifiers"]]
    assert "lumi_A" in lumi


def test_points_are_matched_by_label_values_and_say_who_is_background_only():
    grids = [
        Grid("A", ("m1", "m2"), (("a_300_0", (300, 0)), ("a_400_0", (400, 0)))),
        Grid("B", ("mass1", "m2"), (("b_400_0", (400.0, 0.0)), ("b_500_0", (500, 0)))),
    ]
    with pytest.raises(CombinationError):
        match_points([grids[0], Grid("B", ("x",), ())])
    labels, points, problems = match_points(grids, {"B": {"mass1": "m1"}})
    assert labels == ("m1", "m2") and not problems
    by_name = {p.name: p for p in points}
    assert set(by_name) == {"a_300_0", "a_400_0+b_400_0", "b_500_0"}
    assert by_name["a_300_0"].background_only == ["B"]
    assert by_name["a_400_0+b_400_0"].as_dict()["members"] == {"A": "a_400_0", "B": "b_400_0"}
    assert by_name["b_500_0"].background_only == ["A"]
