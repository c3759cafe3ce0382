"""One temperature for the vote, so that its confidence means what it says.

Every member trained with label smoothing, and the vote averages members that
disagree, so the vote is less sure than it is right: on FER2013's held-out faces
its top probability averaged about 0.60 where it was right 0.67 of the time.
Raising the probabilities to the power 1 / T and renormalising (temperature
scaling; Guo et al., "On Calibration of Modern Neural Networks", 2017) fixes the
scale without moving any face's top class, so accuracy and recall stay exactly as
they were. It matters where the app reads the numbers: the API reports them, and
``memegen.pipeline`` gives a ``mixed`` caption below a top probability of 0.45.

A temperature is only as good as the faces it was fitted on. On ExpW's web photos
the same vote is over-confident, and the temperature fitted on FER2013's crops made
it more so, which is why ``memegen train bias`` fits one only when asked.
"""

from __future__ import annotations

import numpy as np

from memegen.expressions import apply_temperature
from memegen.training.metrics import calibration_error, mean_nll

INVERSE_TEMPERATURES = np.round(np.arange(0.25, 4.0 + 1e-9, 0.001), 3)
"""1 / T tried; the NLL is convex in 1 / T, so the grid's best is the fit's to 0.001."""


def fit_temperature(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """The temperature that minimises the mean negative log-likelihood of ``labels``."""
    log_probabilities = np.log(np.clip(probabilities.astype(np.float64), 1e-12, None))
    picked = log_probabilities[np.arange(len(labels)), labels]
    nlls = [
        float(np.mean(np.logaddexp.reduce(inverse * log_probabilities, axis=1) - inverse * picked))
        for inverse in INVERSE_TEMPERATURES
    ]
    return round(float(1.0 / INVERSE_TEMPERATURES[int(np.argmin(nlls))]), 4)


def temperature_evidence(probabilities: np.ndarray, labels: np.ndarray, temperature: float) -> dict:
    """NLL and calibration error before and after the temperature, for the manifest."""
    tempered = apply_temperature(probabilities, temperature)
    return {
        "method": "one temperature for the vote after its class bias, minimising the weighting "
        "set's mean negative log-likelihood (grid over 1/T in steps of 0.001)",
        "temperature": temperature,
        "nll_before": round(mean_nll(probabilities, labels), 6),
        "nll_after": round(mean_nll(tempered, labels), 6),
        "calibration_error_before": round(calibration_error(probabilities, labels), 6),
        "calibration_error_after": round(calibration_error(tempered, labels), 6),
    }
