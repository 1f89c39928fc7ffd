"""The judge of the discovery benchmark: a property predictor that no method uses, of another model
family and other inputs than the surrogate (``../shared/EVALUATION.md``).

Gradient-boosted trees (scikit-learn's ``HistGradientBoostingRegressor``) on statistics of the elemental
descriptors over a composition's elements (fraction-weighted mean and standard deviation, minimum,
maximum) plus the number of elements and the atomic fractions; the surrogate is an ensemble of neural
networks on x^bp. Trained on the training split only. Nothing under ``discover/`` imports this module.

>>> from stoichgen.chem.composition import Vocabulary
>>> features = judge_features(np.array([[0.5, 0.5]]), Vocabulary(("Na", "Cl")))
>>> features.shape  # 4 statistics x 58 descriptors, the element count, 2 fractions
(1, 235)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.ensemble import HistGradientBoostingRegressor

from stoichgen.chem.composition import Vocabulary, formula_fractions
from stoichgen.data import Dataset, descriptor_matrix


def judge_features(x_b: np.ndarray, vocabulary: Vocabulary) -> np.ndarray:
    """Descriptor statistics, element count and fractions for x^b rows (N, V). Shape (N, 4 * 58 + 1 + V)."""
    x_b = np.asarray(x_b, dtype=float)
    descriptors = descriptor_matrix(vocabulary)  # (V, 58)
    present = x_b > 0  # (N, V)
    mean = x_b @ descriptors  # (N, 58)
    spread = np.sqrt(np.maximum(x_b @ descriptors**2 - mean**2, 0.0))  # (N, 58)
    stacked = np.where(present[:, :, None], descriptors[None], np.nan)  # (N, V, 58)
    with np.errstate(invalid="ignore"):
        low, high = np.nanmin(stacked, axis=1), np.nanmax(stacked, axis=1)  # (N, 58) each
    count = present.sum(axis=1, keepdims=True).astype(float)  # (N, 1)
    return np.hstack([mean, spread, low, high, count, x_b])


@dataclass(frozen=True, eq=False)
class Judge:
    """A fitted judge: ``predict_fractions`` / ``predict_formulas`` give the property in data units."""

    model: HistGradientBoostingRegressor
    vocabulary: Vocabulary

    @classmethod
    def fit(cls, train: Dataset, seed: int = 0) -> Judge:
        model = HistGradientBoostingRegressor(
            max_iter=600, learning_rate=0.08, max_leaf_nodes=63, l2_regularization=1e-3, random_state=seed
        )
        model.fit(_features_chunked(train.x_b(), train.vocabulary), train.y)
        return cls(model, train.vocabulary)

    def predict_fractions(self, x_b: np.ndarray) -> np.ndarray:
        return self.model.predict(_features_chunked(x_b, self.vocabulary))

    def predict_formulas(self, formulas: list[str]) -> np.ndarray:
        return self.predict_fractions(formula_fractions(formulas, self.vocabulary))


def _features_chunked(x_b: np.ndarray, vocabulary: Vocabulary, chunk: int = 8192) -> np.ndarray:
    return np.vstack([judge_features(x_b[i : i + chunk], vocabulary) for i in range(0, len(x_b), chunk)])
