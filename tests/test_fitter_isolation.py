"""Results that may be missing, each with its reason; limits above the POI bound; one bad point
of a batch never costs the others their results (issue 15)."""

from __future__ import annotations

import copy
import math

import pytest

from reinterpret.fitter import (
    InferenceOptions,
    ModelError,
    PointResult,
    compile_models,
    evaluate_points,
    hypotest,
)
from reinterpret.fitter.results import limit_fields
from reinterpret.fitter.spec import read_workspace


def _background(poi_bounds=(0.0, 10.0)) -> dict:
    """Two channels of two bins; the measurement sets up lumi and the POI."""
    return {
        "channels": [
            {
                "name": name,
                "samples": [
                    {
                        "name": "bkg",
                        "data": data,
                        "modifiers": [
                            {"name": "jes", "type": "normsys", "data": {"hi": 1.1, "lo": 0.92}},
                            {"name": "lumi", "type": "lumi", "data": None},
                            {"name": f"stat_{name}", "type": "staterror", "data": [3.0, 2.0]},
                        ],
                    }
                ],
            }
            for name, data in (("SR", [40.0, 20.0]), ("CR", [200.0, 100.0]))
        ],
        "observations": [
            {"name": "SR", "data": [44.0, 19.0]},
            {"name": "CR", "data": [205.0, 98.0]},
        ],
        "measurements": [
            {
                "name": "meas",
                "config": {
                    "poi": "mu",
                    "parameters": [
                        {
                            "name": "lumi",
                            "auxdata": [1.0],
                            "sigmas": [0.02],
                            "bounds": [[0.9, 1.1]],
                        },
                        {"name": "mu", "bounds": [list(poi_bounds)]},
                    ],
                },
            }
        ],
        "version": "1.0.0",
    }


def _with_signal(ws: dict, yields: list[float]) -> dict:
    out = copy.deepcopy(ws)
    out["channels"][0]["samples"].insert(
        0,
        {
            "name": "signal",
            "data": yields,
            "modifiers": [
                {"name": "mu", "type": "normfactor", "data": None},
                {"name": "lumi", "type": "lumi", "data": None},
            ],
        },
    )
    return out


def test_non_finite_numbers_become_null_with_a_reason_at_construction():
    result = PointResult(
        index=0,
        cls_obs=float("nan"),
        cls_exp=(0.01, float("inf"), 0.2, 0.4, 0.6),
        mu_hat=0.5,
        mu_hat_error=None,
        twice_nll=float("-inf"),
        q_obs=1.0,
        q_asimov=2.0,
        converged=False,
        warnings=("Asimov fixed-POI fit did not converge (likelihood not finite)",),
        null_reasons={"mu_hat_error": "the POI is fixed"},
    )
    assert result.cls_obs is None and result.twice_nll is None
    assert result.cls_exp == (0.01, None, 0.2, 0.4, 0.6)
    assert set(result.null_reasons) == {"cls_obs", "cls_exp[1]", "twice_nll", "mu_hat_error"}
    assert result.null_reasons["cls_obs"] == "not a finite number (nan); see the warnings"
    assert result.null_reasons["mu_hat_error"] == "the POI is fixed"  # given reasons are kept
    assert result.significance is None
    assert "CLs=null" in repr(result)


def test_a_failed_point_has_no_numbers_and_its_error():
    result = PointResult.failed(3, "cannot build the model: no POI", upper_limit=True)
    assert result.error == "cannot build the model: no POI" and not result.converged
    assert result.cls_obs is None and result.cls_exp == (None,) * 5
    assert result.mu_up_exp == (None,) * 5 and result.limits_converged is False
    assert "ERROR" in repr(result)


def test_limit_fields_tell_a_limit_above_the_bound_from_one_not_found():
    values = [10.0, 3.0, 10.0, 10.0, 0.0, 4.5]
    found = [False, True, False, True, False, True]
    lim, warnings = limit_fields(values, found, upper_bound=10.0, lower_bound=0.0)
    fields = lim["fields"]
    assert fields["mu_up_obs"] is None and fields["limit_above_poi_bound"] is True
    assert fields["mu_up_exp"] == (3.0, None, 10.0, None, 4.5)
    assert fields["limit_above_poi_bound_exp"] == (False, True, False, False, False)
    assert fields["poi_upper_bound"] == 10.0
    # Above the bound is an answer; only the curve that ended at 0 not found is a failure.
    assert fields["limits_converged"] is False and len(warnings) == 1
    assert "mu_up_exp[3]" in warnings[0]
    assert "above the upper bound of the POI (10)" in lim["null_reasons"]["mu_up_obs"]
    assert "not found" in lim["null_reasons"]["mu_up_exp[3]"]


def test_a_limit_above_the_poi_bound_is_null_and_flagged_and_cls_stays_converged():
    # A signal of 0.3 events on 60 background events: the 95% CL limit on mu is far above 10.
    ws = _with_signal(_background(), [0.2, 0.1])
    (result,) = hypotest(compile_models([ws]), InferenceOptions(upper_limit=True))
    assert result.limit_above_poi_bound is True and result.mu_up_obs is None
    assert result.limit_above_poi_bound_exp == (True,) * 5 and result.mu_up_exp == (None,) * 5
    assert result.poi_upper_bound == 10.0
    assert result.converged is True and result.limits_converged is True
    assert result.cls_obs is not None and 0.5 < result.cls_obs <= 1.0
    assert "above the upper bound" in result.null_reasons["mu_up_obs"]
    # With a wider POI range the same point has a finite limit, above 10.
    wide = _with_signal(_background(poi_bounds=(0.0, 1000.0)), [0.2, 0.1])
    (far,) = hypotest(compile_models([wide]), InferenceOptions(upper_limit=True))
    assert far.limit_above_poi_bound is False and far.mu_up_obs > 10.0


def test_one_point_that_cannot_be_built_leaves_the_others_computed_as_alone():
    bkg = _background()
    good = [_with_signal(bkg, [8.0, 3.0]), _with_signal(bkg, [2.0, 6.0])]
    empty = copy.deepcopy(bkg)  # an empty patch: no sample carries the POI
    options = InferenceOptions(upper_limit=True)
    results = evaluate_points([good[0], empty, good[1]], options)
    assert [r.index for r in results] == [0, 1, 2]
    assert results[1].error is not None
    assert "the parameter of interest 'mu' is not a modifier of any sample" in results[1].error
    alone = hypotest(compile_models(good), options)
    for got, want in zip((results[0], results[2]), alone, strict=True):
        assert got.error is None and got.converged
        assert got.cls_obs == pytest.approx(want.cls_obs, rel=1e-9)
        assert got.mu_up_obs == pytest.approx(want.mu_up_obs, rel=1e-9)


def test_points_that_do_not_fit_one_batch_are_computed_in_their_own():
    bkg = _background()
    other_bins = _with_signal(bkg, [1.0, 1.0])
    other_bins["observations"][1]["data"].append(5.0)  # CR now has 3 bins in its observation
    for sample in other_bins["channels"][1]["samples"]:
        sample["data"].append(1.0)
        sample["modifiers"][2]["data"].append(1.0)
    broken = _with_signal(bkg, [1.0, 1.0])
    broken["channels"][1]["samples"][0]["modifiers"][0]["data"] = {"hi": 1.1}  # no "lo"
    points = [_with_signal(bkg, [8.0, 3.0]), other_bins, broken, _with_signal(bkg, [2.0, 1.0])]
    results = evaluate_points(points)
    assert [r.index for r in results] == [0, 1, 2, 3]
    assert "needs a positive finite 'lo' factor" in results[2].error
    assert results[2].error.endswith("(at /channels/1/samples/0/modifiers/0/data/lo)")
    for k in (0, 1, 3):
        (alone,) = hypotest(compile_models([points[k]]), InferenceOptions())
        assert results[k].error is None
        assert results[k].cls_obs == pytest.approx(alone.cls_obs, rel=1e-9)


def test_every_point_failing_gives_every_point_its_error():
    results = evaluate_points([_background(), _background()])
    assert all(r.error and r.cls_obs is None for r in results)


@pytest.mark.parametrize(
    ("mutate", "pointer", "message"),
    [
        (
            lambda ws: ws["measurements"][0]["config"]["parameters"].pop(0),
            "/measurements/0/config/parameters",
            "lumi parameter 'lumi' needs auxdata and sigmas",
        ),
        (
            lambda ws: ws["channels"][0]["samples"][1]["modifiers"][0].update(data=[1.1, 0.9]),
            "/channels/0/samples/1/modifiers/0/data",
            "normsys 'jes' of sample 'bkg' in channel 'SR' needs data",
        ),
        (
            lambda ws: ws["channels"][1]["samples"][0]["modifiers"][2].update(data=[1.0]),
            "/channels/1/samples/0/modifiers/2/data",
            "does not have 2 bins",
        ),
        (
            lambda ws: ws["channels"][1]["samples"][0]["modifiers"][2].update(type="gaussian"),
            "/channels/1/samples/0/modifiers/2/type",
            "unknown modifier type 'gaussian'",
        ),
        (
            lambda ws: ws["channels"][0]["samples"][1]["modifiers"].append(
                {"name": "h", "type": "histosys", "data": {"hi_data": [1.0, "x"], "lo_data": []}}
            ),
            "/channels/0/samples/1/modifiers/3/data/hi_data",
            "must be a list of finite numbers",
        ),
        (lambda ws: ws.pop("observations"), None, "the workspace is malformed"),
    ],
)
def test_the_spec_reader_refuses_what_cannot_be_built_and_says_where(mutate, pointer, message):
    ws = _with_signal(_background(), [1.0, 1.0])
    mutate(ws)
    with pytest.raises(ModelError, match=message) as info:
        read_workspace(ws, check_data=True)
    assert info.value.pointer == pointer
    # Compiling reads without checking every modifier; a point that then fails to compile is
    # read again with the checks, so its error says the same, and where.
    (result,) = evaluate_points([ws])
    assert message in result.error and result.cls_obs is None
    if pointer:
        assert result.error.endswith(f"(at {pointer})")


def test_a_finite_result_has_no_null_reasons_but_for_what_is_missing():
    (result,) = evaluate_points([_with_signal(_background(), [8.0, 3.0])])
    assert result.error is None and result.converged
    numbers = [result.cls_obs, *result.cls_exp, result.mu_hat, result.twice_nll]
    assert all(x is not None and math.isfinite(x) for x in numbers)
    assert result.null_reasons == {}


def test_a_point_whose_fits_fail_keeps_its_error_and_the_others_are_fitted(monkeypatch):
    from reinterpret.fitter import FitterError, batch

    real = batch.hypotest
    bkg = _background()
    bad = _with_signal(bkg, [8.0, 3.0])
    bad["observations"][0]["data"] = [999.0, 19.0]  # the marker the stand-in refuses

    def failing_hypotest(model, options):
        if (model.observed[:, 0] == 999.0).any():
            raise FitterError("likelihood not finite at the start")
        return real(model, options)

    monkeypatch.setattr(batch, "hypotest", failing_hypotest)
    good = [_with_signal(bkg, [8.0, 3.0]), _with_signal(bkg, [2.0, 6.0])]
    results = evaluate_points([good[0], bad, good[1]])
    assert results[1].error == "cannot fit: likelihood not finite at the start"
    assert [r.index for r in results] == [0, 1, 2]
    alone = real(compile_models(good), InferenceOptions())
    for got, want in zip((results[0], results[2]), alone, strict=True):
        assert got.error is None and got.cls_obs == pytest.approx(want.cls_obs, rel=1e-9)
