"""near(x): the nearest real composition, by Euclidean distance in min-max normalised x^b or x^bp space.

One exact search serves generation (nearest training composition of each candidate) and evaluation
(paper Sec. 6: nearest composition of the whole data set). scikit-learn's brute-force search (chunked
matrix products) finds the winner; its distance is then recomputed directly, since the expanded form
||a||^2 + ||r||^2 - 2 a.r loses precision near zero. Distances do not depend on the normaliser's shift,
so only its scale is applied.

>>> index = NearestIndex.from_dataset(dataset, normaliser, "bp")          # doctest: +SKIP
>>> distance, row = index.query(x_bp)                                      # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from scipy import sparse
from sklearn.neighbors import NearestNeighbors

from stoichgen.data import Dataset, MinMaxNormaliser
from stoichgen.errors import InputError

Space = Literal["b", "bp"]
_QUERY_CHUNK = 65_536  # query rows scaled at once (the search itself is chunked by scikit-learn)
_PRODUCT_CELLS = 1 << 22  # query x reference products held at once by query_within (32 MiB)


def _scale(normaliser: MinMaxNormaliser, start: int, stop: int) -> np.ndarray:
    span = np.asarray(normaliser.maximum[start:stop]) - np.asarray(normaliser.minimum[start:stop])
    return 1.0 / np.where(span > 0, span, 1.0)


class NearestIndex:
    """Exact nearest reference row for query vectors in data units.

    ``x_b``: reference fractions (N, V), dense or sparse; ``x_p``: their descriptor means (N, 58) for
    search in x^bp space, or None for x^b space. ``normaliser``: the model's, over x^b (V columns) or
    x^bp (V + 58); only the columns searched are used. ``y``: the reference rows' property, if known.
    """

    def __init__(
        self,
        x_b: np.ndarray | sparse.spmatrix,
        normaliser: MinMaxNormaliser,
        x_p: np.ndarray | None = None,
        y: np.ndarray | None = None,
    ) -> None:
        n_b = x_b.shape[1]
        self.y = None if y is None else np.asarray(y, dtype=float)
        self.n_b = n_b
        self.space: Space = "b" if x_p is None else "bp"
        self.dim = n_b + (0 if x_p is None else x_p.shape[1])
        if len(normaliser.minimum) < self.dim:
            raise InputError(
                f"the normaliser has {len(normaliser.minimum)} columns; search in x^{self.space} "
                f"space needs {self.dim}"
            )
        x_b = x_b.toarray() if sparse.issparse(x_b) else np.asarray(x_b, dtype=np.float64)
        blocks = [x_b] if x_p is None else [x_b, np.asarray(x_p, dtype=np.float64)]
        self.scale = _scale(normaliser, 0, self.dim)  # (dim,)
        self.points = np.hstack(blocks) * self.scale  # (N, dim), normalised units up to a shift
        self.norms = (self.points**2).sum(axis=1)  # (N,)
        self.search = NearestNeighbors(n_neighbors=1, algorithm="brute").fit(self.points)

    @classmethod
    def from_dataset(cls, dataset: Dataset, normaliser: MinMaxNormaliser, space: Space = "b") -> NearestIndex:
        if space not in ("b", "bp"):
            raise InputError(f"unknown space {space!r}; expected 'b' or 'bp'")
        return cls(dataset.x_b(), normaliser, dataset.x_p() if space == "bp" else None, dataset.y)

    def __len__(self) -> int:
        return len(self.points)

    def query(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Distances (normalised units) and row indices of the nearest reference rows.

        ``x``: (M, >= dim) in data units, x^b fractions first; extra columns are ignored.
        """
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] < self.dim:
            raise InputError(f"query of shape {x.shape}: x^{self.space} space needs {self.dim} columns")
        index = np.empty(len(x), dtype=np.int64)
        distance = np.empty(len(x))
        for start in range(0, len(x), _QUERY_CHUNK):
            rows = slice(start, start + _QUERY_CHUNK)
            q = x[rows, : self.dim] * self.scale  # (m, dim)
            best = self.search.kneighbors(q, return_distance=False)[:, 0]  # (m,)
            index[rows] = best
            distance[rows] = np.sqrt(((q - self.points[best]) ** 2).sum(axis=1))
        return distance, index

    def query_within(self, columns: Sequence[int], x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``query`` for compositions of one chemical system: ``x`` (M, k) the fractions over the x^b
        ``columns`` (zero elsewhere). The same answer, faster (x^b space only).

        ``|q - r|^2 = |q|^2 + |r|^2 - 2 q.r``, and ``q.r`` is zero for every reference row with nothing in
        ``columns``: of those only the one of smallest norm can win. The rest are searched exactly.
        """
        if self.space != "b":
            raise InputError("query_within searches x^b space only")
        cols = list(columns)
        q = np.asarray(x, dtype=np.float64) * self.scale[cols]  # (M, k)
        overlap = (self.points[:, cols] != 0).any(axis=1)  # (N,)
        rows, others = np.flatnonzero(overlap), np.flatnonzero(~overlap)
        near = self.points[rows][:, cols]  # (R, k)
        near_norms = self.norms[rows]  # (R,)
        lone = others[np.argmin(self.norms[others])] if len(others) else -1  # the best row sharing nothing
        index = np.full(len(q), lone, dtype=np.int64)
        step = max(1, _PRODUCT_CELLS // max(1, len(rows)))
        for start in range(0, len(q) if len(rows) else 0, step):
            part = q[start : start + step]  # (m, k)
            cost = near_norms[None, :] - 2.0 * (part @ near.T)  # (m, R): distance^2 - |q|^2
            best = np.argmin(cost, axis=1)  # (m,)
            chosen = rows[best]
            if lone >= 0:
                chosen = np.where(self.norms[lone] < cost[np.arange(len(part)), best], lone, chosen)
            index[start : start + step] = chosen
        full = np.zeros((len(q), self.points.shape[1]))
        full[:, cols] = q
        distance = np.sqrt(((full - self.points[index]) ** 2).sum(axis=1))
        return distance, index
