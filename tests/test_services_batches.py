"""How services.evaluate cuts a grid into batches: the memory model and progress steps."""

from __future__ import annotations

import pytest

from hepstore import examples
from reinterpret import services
from reinterpret.fitter import compile_points


@pytest.fixture(scope="module")
def points():
    background = examples.background_workspace()
    return services.patch_points(background, examples.patchset(background))


def test_the_memory_budget_sets_the_batch_size(points):
    settings = services.Settings()
    probe = compile_points([points[0].workspace]).model
    # Counted without compiling, the model's size is the compiled one's.
    assert services.model_size(points[0].workspace) == (probe.npars, probe.nsb)
    per_point = services.bytes_per_point(probe.npars, probe.nsb, upper_limit=False)
    assert services._chunk_size(points, settings) == min(
        len(points), settings.memory_budget_mb * 2**20 // per_point
    )
    # The limit search keeps more Hessians per point: fewer points per batch.
    assert services.bytes_per_point(126, 131, True) > services.bytes_per_point(126, 131, False)
    assert services.model_size({"channels": 3}) is None
    # The model is of the measured size: 0.3-3.6 MB per point for the shared analyses.
    assert 1.5 * 2**20 < services.bytes_per_point(126, 131, False) < 6 * 2**20


def test_progress_comes_in_steps_and_the_numbers_do_not_depend_on_them(points, monkeypatch):
    points = points[:5]
    monkeypatch.setattr(services, "PROGRESS_MIN_CHUNK", 2)
    steps = []
    watched = services.evaluate(
        points, services.Settings(), lambda done, n: steps.append((done, n))
    )
    assert steps == [(2, 5), (4, 5), (5, 5)]
    plain = services.evaluate(points, services.Settings())
    assert [r["patch"] for r in watched] == [r["patch"] for r in plain]
    for a, b in zip(watched, plain, strict=True):
        assert a["converged"] and b["converged"]
        assert a["cls_obs"] == pytest.approx(b["cls_obs"], abs=1e-6)
        assert a["cls_exp"] == pytest.approx(b["cls_exp"], abs=1e-6)
