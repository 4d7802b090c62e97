"""The classical fallback: ``csi.predictors.ArWiener`` plus beam scores from the codebook.

Used when no model is loaded, the model fails, or running it would blow the deadline. Beam scores
of a fallback answer are the wideband gains (dB) of the first predicted step over the
``csi.codebook`` DFT codebook, the quantity the model's beam head is trained to rank.
"""

from __future__ import annotations

import numpy as np

from csi.codebook import beam_gains, dft_codebook
from csi.metrics import to_db
from csi.predictors import ArWiener
from csi.presets import Preset


class FallbackPredictor:
    """AR(``order``) / Wiener prediction with codebook beam scores for one task."""

    name = "fallback-ar"

    def __init__(self, preset: Preset, order: int = 4) -> None:
        self.ar = ArWiener(order)
        self.codebook = dft_codebook(preset)
        self.min_history = order + 2

    def predict_with_beams(self, history: np.ndarray,
                           horizon: int) -> tuple[np.ndarray, np.ndarray]:
        """Complex ``[b, t, a, r]`` -> (complex64 ``[b, horizon, a, r]``, beam gain in dB
        ``[b, n_beams]`` float32 of the first predicted step)."""
        future = self.ar.predict(history, horizon)
        gains = beam_gains(future[:, 0], self.codebook)
        return future, to_db(gains).astype(np.float32)
