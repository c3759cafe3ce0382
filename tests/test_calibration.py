"""The vote's temperature: how it is applied, fitted, and judged (exact maths)."""

from __future__ import annotations

import numpy as np
import pytest

from memegen.expressions import apply_temperature
from memegen.training.calibration import fit_temperature, temperature_evidence
from memegen.training.metrics import calibration_error


def test_temperature_below_one_sharpens_and_keeps_the_top_class():
    vote = np.array([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]])
    sharper = apply_temperature(vote, 0.5)
    np.testing.assert_allclose(sharper[0], np.array([25, 9, 4]) / 38, atol=1e-6)
    np.testing.assert_array_equal(sharper.argmax(axis=1), vote.argmax(axis=1))
    assert apply_temperature(vote, 1.0) is vote


def test_fit_recovers_the_temperature_that_undoes_an_overconfident_vote():
    rng = np.random.default_rng(3)
    truth = rng.dirichlet(np.full(7, 0.7), size=20_000)
    labels = np.array([rng.choice(7, p=row) for row in truth])
    overconfident = apply_temperature(truth, 0.5)  # the truth squared, renormalised
    assert fit_temperature(overconfident, labels) == pytest.approx(2.0, abs=0.05)
    assert fit_temperature(truth, labels) == pytest.approx(1.0, abs=0.03)


def test_calibration_error_weighs_each_bins_gap_by_its_faces():
    # one sure face that is right (gap 0.1), one unsure face that is wrong (gap 0.6)
    vote = np.array([[0.9, 0.1], [0.6, 0.4]])
    assert calibration_error(vote, np.array([0, 1])) == pytest.approx(0.5 * 0.1 + 0.5 * 0.6)


def test_evidence_reports_the_fitted_temperature_improving_the_nll():
    rng = np.random.default_rng(1)
    truth = rng.dirichlet(np.ones(7), size=5_000)
    labels = np.array([rng.choice(7, p=row) for row in truth])
    underconfident = apply_temperature(truth, 1.5)
    temperature = fit_temperature(underconfident, labels)
    evidence = temperature_evidence(underconfident, labels, temperature)
    assert temperature < 1.0
    assert evidence["nll_after"] < evidence["nll_before"]
    assert evidence["calibration_error_after"] < evidence["calibration_error_before"]
