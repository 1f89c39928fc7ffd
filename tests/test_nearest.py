from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse
from sklearn.neighbors import NearestNeighbors

from stoichgen.data import MinMaxNormaliser, load_csv
from stoichgen.nearest import NearestIndex

FORMULAS = ["NaCl", "KCl", "NaF", "KF", "Na", "LiFeO2", "Fe2O3", "SiO2", "MgAl2O4", "CaTiO3"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    path = tmp_path_factory.mktemp("nearest") / "d.csv"
    path.write_text("c,y\n" + "".join(f"{f},{-0.1 * i}\n" for i, f in enumerate(FORMULAS)))
    return load_csv(path, "c", "y")


@pytest.mark.parametrize("space", ["b", "bp"])
def test_matches_brute_force_in_normalised_space(dataset, space):
    normaliser = MinMaxNormaliser.fit(dataset.x_bp())
    index = NearestIndex.from_dataset(dataset, normaliser, space)
    dim = len(dataset.vocabulary) + (58 if space == "bp" else 0)
    rng = np.random.default_rng(0)
    # queries: noisy copies of reference rows (x^b fractions and x^p), in data units
    queries = dataset.x_bp()[rng.integers(0, len(dataset), 200)] * rng.uniform(0.7, 1.3, (200, 1))
    scaled = normaliser.transform(dataset.x_bp())[:, :dim]
    brute = NearestNeighbors(n_neighbors=1, algorithm="brute").fit(scaled)
    expected_d, expected_i = brute.kneighbors(normaliser.transform(queries)[:, :dim])
    distance, row = index.query(queries)
    np.testing.assert_array_equal(row, expected_i[:, 0])
    # sklearn uses the expanded form, accurate to ~1e-10 near zero; ours recomputes the winner exactly
    np.testing.assert_allclose(distance, expected_d[:, 0], rtol=1e-7, atol=1e-9)
    assert index.dim == dim and index.y is not None and index.y[row[0]] == dataset.y[row[0]]


def test_sparse_and_dense_references_agree(dataset):
    normaliser = MinMaxNormaliser.fit(dataset.x_b())
    queries = dataset.x_b()[::-1] * 0.9
    dense = NearestIndex(dataset.x_b(), normaliser).query(queries)
    compact = NearestIndex(sparse.csr_matrix(dataset.x_b()), normaliser).query(queries)
    np.testing.assert_array_equal(dense[1], compact[1])
    np.testing.assert_allclose(dense[0], compact[0])


def test_exact_row_has_zero_distance(dataset):
    index = NearestIndex.from_dataset(dataset, MinMaxNormaliser.fit(dataset.x_bp()), "bp")
    distance, row = index.query(dataset.x_bp()[[5]])
    assert row[0] == 5 and distance[0] == pytest.approx(0.0, abs=1e-12)


def test_too_few_columns_is_an_error(dataset):
    index = NearestIndex.from_dataset(dataset, MinMaxNormaliser.fit(dataset.x_bp()), "bp")
    with pytest.raises(ValueError, match="needs"):
        index.query(dataset.x_b())
    with pytest.raises(ValueError, match="normaliser has"):
        NearestIndex(dataset.x_b(), MinMaxNormaliser.fit(dataset.x_b()), dataset.x_p())


def test_many_chunks_in_threads_equal_one_chunk(dataset, monkeypatch):
    import stoichgen.nearest as nearest_module

    index = NearestIndex.from_dataset(dataset, MinMaxNormaliser.fit(dataset.x_bp()), "bp")
    queries = dataset.x_bp()[np.random.default_rng(1).integers(0, len(dataset), 500)] * 1.1
    whole = index.query(queries)
    monkeypatch.setattr(nearest_module, "_CHUNK_CELLS", 3 * len(dataset))  # 3 queries per chunk
    chunked = index.query(queries)
    np.testing.assert_array_equal(whole[1], chunked[1])
    np.testing.assert_array_equal(whole[0], chunked[0])
