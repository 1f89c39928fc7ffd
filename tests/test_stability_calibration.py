"""p_stable's recalibration (predict.StabilityCalibration): the map, its cache beside the checkpoint, and
the bundled run's shipped map equal to a fresh fit."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from stoichgen.predict import STABILITY_CALIBRATION, StabilityCalibration, Surrogate
from stoichgen.run import bundled_run_dir


def test_the_map_is_monotone_keeps_nan_and_clips_at_the_ends():
    calibration = StabilityCalibration((0.1, 0.4, 0.9), (0.2, 0.3, 0.7))
    probability = np.array([0.0, 0.1, 0.25, 0.4, 0.65, 0.9, 1.0, np.nan])
    mapped = calibration.apply(probability)
    np.testing.assert_allclose(mapped[:-1], [0.2, 0.2, 0.25, 0.3, 0.5, 0.7, 0.7])
    assert np.isnan(mapped[-1])
    assert np.all(np.diff(mapped[:-1]) >= 0)


def test_the_fit_is_cached_beside_the_checkpoint_and_refitted_for_another(tmp_path, monkeypatch):
    run = tmp_path / "run"
    shutil.copytree(bundled_run_dir("surrogate-bp"), run)
    (run / STABILITY_CALIBRATION).unlink()
    fits = []
    fitted = StabilityCalibration((0.0, 1.0), (0.1, 0.9))
    monkeypatch.setattr(StabilityCalibration, "fit", classmethod(lambda cls, s: fits.append(s) or fitted))

    assert Surrogate.from_run(run).stability_calibration == fitted and len(fits) == 1
    stored = json.loads((run / STABILITY_CALIBRATION).read_text())
    assert stored["knots"] == [0.0, 1.0] and stored["values"] == [0.1, 0.9]
    assert Surrogate.from_run(run).stability_calibration == fitted and len(fits) == 1  # read, not refitted

    stored["checkpoint_sha256"] = "0" * 64  # another checkpoint's map (a retrained run): fitted again
    (run / STABILITY_CALIBRATION).write_text(json.dumps(stored))
    assert Surrogate.from_run(run).stability_calibration == fitted
    assert len(fits) == 2
    (run / STABILITY_CALIBRATION).write_text("{not json")  # damaged: fitted again, not an error
    assert Surrogate.from_run(run).stability_calibration == fitted
    assert len(fits) == 3


@pytest.mark.slow
def test_the_bundled_map_is_a_fresh_fit_and_pulls_the_outer_bins_in():
    surrogate = Surrogate.from_run(bundled_run_dir("surrogate-bp"))
    fresh = StabilityCalibration.fit(surrogate)
    np.testing.assert_allclose(surrogate.stability_calibration.knots, fresh.knots, atol=1e-9)
    np.testing.assert_allclose(surrogate.stability_calibration.values, fresh.values, atol=1e-9)
    low, high = fresh.apply(np.array([0.02, 0.98]))
    assert low > 0.02 and high < 0.98  # held-out compounds: the normal model is overconfident at both ends
