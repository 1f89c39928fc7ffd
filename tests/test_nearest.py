from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse

from stoichgen.data import MinMaxNormaliser, load_csv
from stoichgen.nearest import NearestIndex

FORMULAS = ["NaCl", "KCl", "NaF", "KF", "Na", "LiFeO2", "Fe2O3", "SiO2", "MgAl2O4", "CaTiO3"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    path = tmp_path_factory.mktemp("nearest") / "d.csv"
    path.write_text("c,y\n" + "".join(f"{f},{-0.1 * i}\n" for i, f in enumerate(FORMULAS)))
    return load_csv(path, "c", "y")


@pytest.mark.parametrize("space", ["b", "bp"])
def test_matches_the_full_distance_matrix_in_normalised_space(dataset, space):
    normaliser = MinMaxNormaliser.fit(dataset.x_bp())
    index = NearestIndex.from_dataset(dataset, normaliser, space)
    dim = len(dataset.vocabulary) + (58 if space == "bp" else 0)
    rng = np.random.default_rng(0)
    # queries: scaled copies of reference rows (x^b fractions and x^p), in data units
    queries = dataset.x_bp()[rng.integers(0, len(dataset), 200)] * rng.uniform(0.7, 1.3, (200, 1))
    a = normaliser.transform(queries)[:, None, :dim]  # (M, 1, dim)
    r = normaliser.transform(dataset.x_bp())[None, :, :dim]  # (1, N, dim)
    full = np.sqrt(((a - r) ** 2).sum(axis=2))  # (M, N)
    distance, row = index.query(queries)
    np.testing.assert_array_equal(row, full.argmin(axis=1))
    np.testing.assert_allclose(distance, full.min(axis=1), rtol=1e-9, atol=1e-12)
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


def test_many_query_chunks_equal_one_chunk(dataset, monkeypatch):
    import stoichgen.nearest as nearest_module

    index = NearestIndex.from_dataset(dataset, MinMaxNormaliser.fit(dataset.x_bp()), "bp")
    queries = dataset.x_bp()[np.random.default_rng(1).integers(0, len(dataset), 500)] * 1.1
    whole = index.query(queries)
    monkeypatch.setattr(nearest_module, "_QUERY_CHUNK", 3)
    chunked = index.query(queries)
    np.testing.assert_array_equal(whole[1], chunked[1])
    np.testing.assert_array_equal(whole[0], chunked[0])


def test_query_within_a_system_equals_the_full_search():
    """The fast path for compositions of one chemical system finds the same distances as the full search,
    including reference rows that share no element with the query (the ones counted by norm alone)."""
    rng = np.random.default_rng(0)
    reference = rng.dirichlet(np.ones(6), size=300) * (rng.random((300, 6)) < 0.5)
    reference = reference[reference.sum(axis=1) > 0]
    reference /= reference.sum(axis=1, keepdims=True)
    normaliser = MinMaxNormaliser.fit(np.vstack([reference, np.zeros(6), np.ones(6)]))
    index = NearestIndex(reference, normaliser)
    for columns in ([0, 1], [2, 4, 5], [3]):
        x = rng.dirichlet(np.ones(len(columns)), size=50)  # (50, k)
        full = np.zeros((50, 6))
        full[:, columns] = x
        distance, rows = index.query_within(columns, x)
        expected, _ = index.query(full)
        np.testing.assert_allclose(distance, expected, atol=1e-12)
        np.testing.assert_allclose(
            np.sqrt(((full * index.scale - index.points[rows]) ** 2).sum(axis=1)), distance
        )
