from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
import pytest
from pymatgen.core import Composition, Element

from stoichgen.chem.balance import _grid_feasible, balance_valence, exact_balance, metropolis_hastings
from stoichgen.chem.composition import (
    Vocabulary,
    composition_to_fractions,
    fraction_dicts,
    integer_formula,
    parse_formula,
    threshold_fractions,
)
from stoichgen.chem.oxidation import (
    affordable_rows,
    assignment_set,
    can_neutralise,
    charge_neutral,
    min_abs_charge,
    oxidation_states,
    valence,
)
from stoichgen.chem.validity import smact_valid
from stoichgen.errors import InputError

VOCAB = Vocabulary(("Li", "N", "O", "Na", "Al", "S", "Cl", "Ar", "K", "Ti", "Mn", "Fe", "Ni"))


def rows(*formulas: str, vocab: Vocabulary = VOCAB) -> np.ndarray:
    return np.array([composition_to_fractions(parse_formula(f), vocab) for f in formulas])


def fractions(vocab: Vocabulary = VOCAB, **amounts: float) -> np.ndarray:
    x = np.zeros(len(vocab))
    for symbol, amount in amounts.items():
        x[vocab.index(symbol)] = amount
    return x


def brute_valence(x: np.ndarray, vocab: Vocabulary, table: str = "common") -> float:
    """min |v.x| over the Cartesian product of states, by itertools (independent of the package)."""
    present = np.flatnonzero(x > 0)
    states = [oxidation_states(vocab.symbols[i], table) for i in present]
    if not present.size or not all(states):
        return float("nan")
    return min(
        abs(sum(v * x[i] for v, i in zip(combo, present, strict=True)))
        for combo in itertools.product(*states)
    )


def neutral_counts_exist(counts: dict[str, int], table: str = "common") -> bool:
    states = [oxidation_states(symbol, table) for symbol in counts]
    amounts = list(counts.values())
    return any(
        sum(c * v for c, v in zip(amounts, combo, strict=True)) == 0 for combo in itertools.product(*states)
    )


# ---------------------------------------------------------------------------------------------------------
# oxidation tables and valence


def test_oxidation_tables_from_pymatgen():
    assert oxidation_states("Fe") == (2, 3)
    assert oxidation_states("Fe", "icsd") == (2, 3)
    assert 4 in oxidation_states("Fe", "all") and -2 in oxidation_states("Fe", "all")
    assert oxidation_states("Ar") == ()
    with pytest.raises(ValueError, match="unknown oxidation table 'bogus'"):
        oxidation_states("Fe", "bogus")
    with pytest.raises(ValueError, match="unknown element symbol 'Xx'"):
        oxidation_states("Xx")


def test_known_neutral_and_not():
    x = rows("NaCl", "Fe2O3", "NaCl2")
    assert charge_neutral(x, VOCAB).tolist() == [True, True, False]
    assert valence(x, VOCAB) == pytest.approx([0.0, 0.0, 1 / 3], abs=1e-12)


def test_fe3o4_is_not_neutral_with_one_state_per_element():
    # Fe3O4 needs Fe2+ and Fe3+ at once; with one state per element the best is Fe3+: |9/7 - 8/7| = 1/7.
    # SMACT (mixed_valence=False by default) agrees.
    x = rows("Fe3O4")[0]
    assert valence(x, VOCAB) == pytest.approx(1 / 7)
    assert not charge_neutral(x, VOCAB)
    assert not smact_valid(["Fe3O4"])[0]


def test_mixed_numbers_of_states_where_the_authors_code_gives_up():
    # Fe has 2 common states, Mn 3, O 1: FeMnO3 is neutral as Fe2+ Mn4+ O2-.
    x = rows("FeMnO3", "LiMn2O4", "Li2MnO3")
    assert valence(x, VOCAB).tolist() == pytest.approx([0.0, 1 / 7, 0.0], abs=1e-12)


@pytest.mark.parametrize("table", ["common", "all", "icsd"])
def test_valence_matches_brute_force(table):
    vocab = Vocabulary(("N", "O", "S", "Cl", "Cr", "Mn", "Fe", "Co", "Ni"))
    rng = np.random.default_rng(3)
    x = np.zeros((40, len(vocab)))
    for row in x:  # 2-4 elements with different numbers of states
        row[rng.choice(len(vocab), rng.integers(2, 5), replace=False)] = rng.uniform(0.05, 1.0)
    x[0] = [0.0, 0.0, 0.1, 0.2, 0.1, 0.3, 0.3, 0.0, 0.0]  # S Cl Cr Mn Fe: 40960 "all" assignments
    x /= x.sum(axis=1, keepdims=True)
    expected = [brute_valence(row, vocab, table) for row in x]
    assert valence(x, vocab, oxidation=table) == pytest.approx(expected, abs=1e-12)
    if table == "all":  # more than 1024 assignments: the meet-in-the-middle path ran
        states = tuple(oxidation_states(vocab.symbols[i], "all") for i in np.flatnonzero(x[0]))
        assert assignment_set(states).right is not None


def test_meet_in_the_middle_search_matches_full_enumeration():
    rng = np.random.default_rng(11)
    p = rng.random((3, 50, 4))
    left = np.zeros((3, 7, 4))
    right = np.zeros((3, 9, 4))
    left[:, :, :2] = rng.integers(-4, 8, (3, 7, 2))
    right[:, :, 2:] = rng.integers(-4, 8, (3, 9, 2))
    full = np.abs(p @ (left[:, :, None, :] + right[:, None, :, :]).reshape(3, 63, 4).transpose(0, 2, 1))
    np.testing.assert_allclose(min_abs_charge(p, left, right), full.min(axis=-1), atol=1e-12)


def test_neutrality_needs_room_above_the_threshold():
    # Eight +4 cations at >= 0.03 each carry at least +0.96; F- can then hold at most 0.76: no neutral point.
    states = ((4,),) * 8 + ((-1,),)
    assert not can_neutralise(states, 0.03)
    assert can_neutralise(states, 0.0)
    assert can_neutralise(states[-2:], 0.03)
    # With threshold 0 only the signs matter: NaK is unbalanceable, NaCl and pure C (state 0) are not.
    x = np.vstack([rows("NaCl"), rows("NaK")])
    assert balance_valence(x, VOCAB, "none", threshold=0.0).unbalanceable.tolist() == [False, True]
    assert can_neutralise((oxidation_states("C"),), 0.0)


def test_oxidation_table_choice_changes_a_known_case():
    # FeO2 needs Fe4+: only in pymatgen's full table.
    x = rows("FeO2")[0]
    assert not charge_neutral(x, VOCAB, oxidation="common")
    assert not charge_neutral(x, VOCAB, oxidation="icsd")
    assert charge_neutral(x, VOCAB, oxidation="all")


def test_noble_gas_rows_are_flagged_not_crashing():
    x = np.vstack([rows("NaCl"), fractions(Na=0.5, Ar=0.5), fractions(Ar=1.0), np.zeros(len(VOCAB))])
    assert np.isnan(valence(x, VOCAB)[1:]).all()
    for method in ("none", "mh", "exact"):
        result = balance_valence(x, VOCAB, method)
        assert result.unbalanceable.tolist() == [False, True, True, True]
        assert result.charge_neutral.tolist() == [True, False, False, False]
        np.testing.assert_array_equal(result.x, x)


# ---------------------------------------------------------------------------------------------------------
# Metropolis-Hastings


def test_mh_balances_hand_made_rows_on_the_two_decimal_grid():
    x = np.vstack([fractions(Na=0.6, Cl=0.4), fractions(Li=0.84, O=0.06, Ni=0.10)])
    result = metropolis_hastings(x, VOCAB, rng=1)
    assert result.charge_neutral.all() and (result.iterations >= 1).all()
    np.testing.assert_allclose(result.x[0], fractions(Na=0.5, Cl=0.5))
    counts = np.round(result.x[1] * 100)
    np.testing.assert_allclose(result.x[1] * 100, counts, atol=1e-9)  # on the 0.01 grid
    li, o, ni = (int(counts[VOCAB.index(s)]) for s in ("Li", "O", "Ni"))
    assert li + o + ni == 100 and li - 2 * o + 2 * ni == 0  # Li+ O2- Ni2+, exactly
    assert result.valence_raw == pytest.approx([0.2, brute_valence(x[1], VOCAB)])
    assert result.valence == pytest.approx([0.0, 0.0], abs=1e-12)


def test_mh_keeps_fractions_positive_normalised_and_on_the_same_elements():
    rng = np.random.default_rng(0)
    x = np.vstack(
        [fractions(Li=0.5, Mn=0.2, O=0.3, K=0.01), fractions(Na=0.3, Cl=0.4, O=0.3), rows("NaCl")[0]]
    )
    x = np.vstack([x, x * rng.uniform(0.8, 1.2, x.shape)])
    result = metropolis_hastings(x, VOCAB, rng=2)
    kept_elements = x >= 0.03 * x.sum(axis=1, keepdims=True)  # K 0.01 is below the threshold
    assert ((result.x > 0) == kept_elements).all()
    assert (result.x[kept_elements] >= 0.03).all()  # decoding with TH keeps every element
    np.testing.assert_allclose(result.x.sum(axis=1), 1.0)
    np.testing.assert_array_equal(result.x[2], x[2])  # already neutral: untouched
    assert result.iterations[2] == 0
    assert result.charge_neutral.all()


def test_mh_takes_the_best_of_its_proposals():
    # Far from neutral, one round with 100 proposals always finds a better composition.
    t = np.linspace(0.62, 0.9, 30)
    x = np.zeros((30, len(VOCAB)))
    x[:, VOCAB.index("Na")], x[:, VOCAB.index("Cl")] = t, 1 - t
    result = metropolis_hastings(x, VOCAB, max_iterations=1, rng=0)
    assert (result.valence < result.valence_raw - 1e-9).all()


def test_mh_accepts_worse_proposals_only_with_probability_alpha():
    # Re0.94O0.06 has valence 3.64; a single proposal that raises it by ~0.3 has alpha ~ exp(-2). Chains
    # that end worse after one round must be rare (about half would if every proposal were accepted).
    vocab_re = Vocabulary(("O", "Re"))
    x = np.tile(np.array([0.06, 0.94]), (400, 1))
    result = metropolis_hastings(x, vocab_re, n_proposals=1, max_iterations=1, decimals=None, rng=4)
    worse = result.valence > result.valence_raw + 1e-9
    assert worse.mean() < 0.2
    assert (result.iterations == 1).all()


def test_mh_keeps_small_elements_above_the_threshold():
    # Balancing these pushes the small element towards zero; proposals below TH have pi = 0, so every
    # element stays >= 0.03 (with the authors' clip-and-round it could vanish or fall below TH).
    x = np.repeat(
        np.vstack(
            [
                fractions(Al=0.04, Ni=0.5, O=0.46),
                fractions(Li=0.04, Ni=0.6, O=0.36),
                fractions(Na=0.04, Cl=0.3, O=0.3, Ni=0.36),
            ]
        ),
        4,
        axis=0,
    )
    result = metropolis_hastings(x, VOCAB, rng=0)
    assert result.charge_neutral.all()
    assert ((result.x >= 0.03) == (x > 0)).all()


def test_mh_is_deterministic_for_a_seed():
    x = np.vstack(
        [fractions(Na=0.2, Cl=0.5, O=0.3), fractions(Li=0.7, Mn=0.1, O=0.2), fractions(Al=0.7, O=0.3)]
    )
    first, second = metropolis_hastings(x, VOCAB, rng=5), metropolis_hastings(x, VOCAB, rng=5)
    np.testing.assert_array_equal(first.x, second.x)
    np.testing.assert_array_equal(first.iterations, second.iterations)
    assert (first.iterations > 0).all()


def test_mh_leaves_rows_without_a_neutral_grid_point():
    # TiO2 needs Ti = 1/3: no 0.01-grid point is neutral, so the row is not walked; the continuous
    # walk reaches |valence| < tol.
    x = fractions(Ti=0.4, O=0.6)[None]
    on_grid = metropolis_hastings(x, VOCAB)
    assert not on_grid.charge_neutral[0] and on_grid.iterations[0] == 0 and not on_grid.unbalanceable[0]
    np.testing.assert_array_equal(on_grid.x, x)
    continuous = metropolis_hastings(x, VOCAB, decimals=None, rng=0)
    assert continuous.charge_neutral[0] and continuous.valence[0] < 1e-3
    assert continuous.x[0, VOCAB.index("Ti")] == pytest.approx(1 / 3, abs=1e-3)


@pytest.mark.parametrize(
    "states",
    [
        ((4,), (-2,)),  # TiO2: no
        ((1,), (-1,)),  # NaCl: yes
        ((3,), (-4, 2, 4), (3,)),  # Rh Sn Yb: no (7 Sn = 300)
        ((-1, 1), (2,), (2,)),  # H Mg Ni: no
        ((1,), (-2,), (2,)),  # Li O Ni: yes
        ((1,), (-2,), (1,), (4, 7)),  # Li O Na Re: no (3 divides neither 100 nor 98)
    ],
)
def test_grid_feasibility_matches_brute_force(states):
    # Counts c_i >= 3 summing to 100 with sum c_i v_i = 0: loop over all but the last two counts, which
    # the two linear equations then fix.
    floor, unit = 3, 100
    expected = False
    for combo in itertools.product(*states):
        *head_states, v_a, v_b = combo
        for head in itertools.product(range(floor, unit + 1), repeat=len(states) - 2):
            rest, charge = unit - sum(head), -sum(c * v for c, v in zip(head, head_states, strict=True))
            if v_a == v_b:
                expected |= charge == v_a * rest and rest >= 2 * floor
            elif (charge - v_b * rest) % (v_a - v_b) == 0:
                c_a = (charge - v_b * rest) // (v_a - v_b)
                expected |= c_a >= floor and rest - c_a >= floor
    assert _grid_feasible(states, unit, floor) == expected


def test_mh_flags_one_sign_rows_and_leaves_them():
    x = np.vstack([fractions(Na=0.5, K=0.5), fractions(Al=0.85, Ni=0.15)])
    result = metropolis_hastings(x, VOCAB)
    assert result.unbalanceable.all() and not result.charge_neutral.any()
    assert (result.iterations == 0).all()
    np.testing.assert_array_equal(result.x, x)


# ---------------------------------------------------------------------------------------------------------
# exact balancing


def counts_of(row: np.ndarray, vocab: Vocabulary, max_atoms: int) -> dict[str, int]:
    amounts = {
        vocab.symbols[i]: Fraction(float(row[i])).limit_denominator(max_atoms) for i in np.flatnonzero(row)
    }
    scale = np.lcm.reduce([a.denominator for a in amounts.values()])
    return {s: int(a * scale) for s, a in amounts.items()}


def test_exact_rows_are_neutral_by_brute_force():
    rng = np.random.default_rng(7)
    sets = [("Na", "Cl"), ("Fe", "O"), ("Li", "Mn", "O"), ("Na", "S", "Cl", "O"), ("Li", "Fe", "Mn", "O")]
    x = []
    for symbols in sets:
        for _ in range(4):
            x.append(fractions(**dict(zip(symbols, rng.uniform(0.1, 1.0, len(symbols)), strict=True))))
    x = np.array(x)
    x /= x.sum(axis=1, keepdims=True)
    result = exact_balance(x, VOCAB, max_atoms=12)
    assert result.charge_neutral.all()
    for row, before in zip(result.x, x, strict=True):
        counts = counts_of(row, VOCAB, 12)
        assert sum(counts.values()) <= 12 and min(counts.values()) >= 1
        assert set(counts) == {VOCAB.symbols[i] for i in np.flatnonzero(before)}
        assert neutral_counts_exist(counts)
        np.testing.assert_allclose(row[row > 0], np.array(list(counts.values())) / sum(counts.values()))


@pytest.mark.parametrize(
    "target", [{"Fe": 0.42, "O": 0.58}, {"Na": 0.3, "Cl": 0.7}, {"Li": 0.2, "Mn": 0.25, "O": 0.55}]
)
def test_exact_is_the_nearest_neutral_formula(target):
    max_atoms = 8
    symbols = list(target)
    x = fractions(**target)
    best = np.inf
    for counts in itertools.product(range(1, max_atoms + 1), repeat=len(symbols)):
        if sum(counts) <= max_atoms and neutral_counts_exist(dict(zip(symbols, counts, strict=True))):
            distance = np.linalg.norm(np.array(counts) / sum(counts) - np.array(list(target.values())))
            best = min(best, distance)
    result = exact_balance(x[None], VOCAB, max_atoms=max_atoms)
    assert result.charge_neutral[0]
    assert np.linalg.norm(result.x[0] - x) == pytest.approx(best, abs=1e-12)


def test_exact_candidates_keep_every_element_above_the_threshold():
    # Up to 30 atoms, Na1K12Cl13 (Na 1/26 < 0.04) would be nearest; the threshold keeps Na1K11Cl12.
    x = fractions(Na=0.04, K=0.4599, Cl=0.5001)[None]
    result = exact_balance(x, VOCAB, max_atoms=30, tol=1e-6, threshold=0.04)
    assert result.charge_neutral[0]
    assert result.x[0, VOCAB.index("Na")] == pytest.approx(1 / 24)


def test_exact_refuses_formula_units_above_the_limit():
    with pytest.raises(InputError, match="max_atoms 300 is above 30"):
        exact_balance(fractions(Na=0.5, Cl=0.5)[None], VOCAB, max_atoms=300)


def test_exact_flags_impossible_rows():
    x = np.vstack([fractions(Na=0.5, K=0.5), fractions(Al=0.5, O=0.5), rows("NaCl2")[0]])
    result = exact_balance(x, VOCAB, max_atoms=4)  # Al2O3 needs 5 atoms
    assert result.charge_neutral.tolist() == [False, False, True]
    assert result.unbalanceable.tolist() == [True, False, False]
    np.testing.assert_array_equal(result.x[:2], x[:2])
    np.testing.assert_allclose(result.x[2], rows("NaCl")[0])


# The bundled model's 89 elements (Generator.default().vocabulary): H to Pu but Po, At, Rn, Fr and Ra.
MODEL_VOCAB = Vocabulary(tuple(Element.from_Z(z).symbol for z in range(1, 95) if not 84 <= z <= 88))


def pymatgen_neutral(formula: str, table: str, target: int = 0) -> bool:
    """pymatgen's own check with a table's states (README): ``Composition.oxi_state_guesses``."""
    comp = Composition(formula)
    if table == "all":
        return bool(comp.oxi_state_guesses(all_oxi_states=True, target_charge=target))
    if table == "icsd":
        return bool(comp.oxi_state_guesses(target_charge=target))
    common = {el.symbol: el.common_oxidation_states for el in comp}
    return bool(comp.oxi_state_guesses(oxi_states_override=common, target_charge=target))


@pytest.mark.parametrize("table", ["common", "icsd", "all"])
def test_tables_are_pymatgens_own_check(table):
    # Probed with one F- (Cs+ for F itself): pymatgen calls any single element neutral, and with one atom
    # of each element its mixed valences cannot hide a missing state.
    for symbol in MODEL_VOCAB.symbols:
        partner, charge = ("Cs", 1) if symbol == "F" else ("F", -1)
        seen = tuple(s for s in range(-8, 9) if pymatgen_neutral(symbol + partner, table, s + charge))
        assert oxidation_states(symbol, table) == seen, symbol


def big_neutral_rows(rng: np.random.Generator, n: int) -> list[np.ndarray]:
    """Primitive formulas of 40-120 atoms, neutral as integers for common states: within tol of neutral
    as fractions, far above max_atoms as formula units."""
    out: list[np.ndarray] = []
    symbols = [s for s in MODEL_VOCAB.symbols if oxidation_states(s)]
    while len(out) < n:
        elements = list(rng.choice(symbols, size=int(rng.integers(2, 5)), replace=False))
        v = [int(rng.choice(oxidation_states(e))) for e in elements]
        counts = [int(c) for c in rng.integers(1, 31, size=len(elements) - 1)]
        last, rest = v[-1], -sum(c * s for c, s in zip(counts, v, strict=False))
        if last == 0 or rest % last or rest // last < 1:
            continue
        counts.append(rest // last)
        total = sum(counts)
        if not 40 <= total <= 120 or np.gcd.reduce(counts) != 1 or min(counts) / total < 0.035:
            continue
        out.append(fractions(MODEL_VOCAB, **{e: c / total for e, c in zip(elements, counts, strict=True)}))
    return out


def realistic_batch(seed: int = 11, n_random: int = 240, n_big: int = 60) -> np.ndarray:
    """Generated-looking rows over the model's elements: random fractions over 1-8 random elements (Xe in
    every sixth), big formulas neutral within tol (half nudged by 1e-5, still within tol), and exact small
    neutral formulas."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n_random, len(MODEL_VOCAB)))
    for i, row in enumerate(x):
        k = int(rng.choice(np.arange(1, 9), p=[0.05, 0.25, 0.25, 0.15, 0.1, 0.1, 0.05, 0.05]))
        cols = rng.choice(len(MODEL_VOCAB), size=k, replace=False)
        if i % 6 == 0 and MODEL_VOCAB.index("Xe") not in cols:
            cols[0] = MODEL_VOCAB.index("Xe")
        row[cols] = rng.dirichlet(np.full(k, 2.0))
    big = np.array(big_neutral_rows(rng, n_big))
    big[::2] += 1e-5 * rng.random(big[::2].shape) * (big[::2] > 0)
    small = rows("NaCl", "Fe2O3", "XeF2", "Li3PO4", vocab=MODEL_VOCAB)
    x = np.vstack([x, big, small])
    return x / x.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("table", ["common", "icsd", "all"])
def test_exact_neutral_rows_pass_pymatgens_check(table):
    """Every row exact balancing calls neutral is a reduced formula of at most max_atoms atoms that
    pymatgen's own check for the table finds neutral; the output's formula is that of its fractions."""
    max_atoms = 20 if table != "all" else 12  # pymatgen's check tries every state per site: "all" is slow
    x = realistic_batch()
    x = x[affordable_rows(threshold_fractions(x) > 0, MODEL_VOCAB, table)]  # as the paper method does
    result = exact_balance(x, MODEL_VOCAB, oxidation=table, max_atoms=max_atoms)
    assert result.charge_neutral.mean() > 0.5
    assert not (result.charge_neutral & result.unbalanceable).any()
    checked: dict[str, bool] = {}
    for row in result.x[result.charge_neutral]:
        formula = integer_formula(fraction_dicts(row[None], MODEL_VOCAB.symbols)[0])
        comp = Composition(formula)
        assert comp.num_atoms <= max_atoms, formula
        np.testing.assert_allclose(
            [row[MODEL_VOCAB.index(el.symbol)] for el in comp], [comp.get_atomic_fraction(el) for el in comp]
        )
        if formula not in checked:
            checked[formula] = pymatgen_neutral(formula, table)
        assert checked[formula], (formula, table)
    # exact small neutral formulas stay as they are
    np.testing.assert_allclose(result.x[-4:], x[-4:], atol=1e-12)
    assert result.charge_neutral[-4:].tolist() == [True, True, table != "all", True]  # "all": no Xe states


# ---------------------------------------------------------------------------------------------------------
# entry point and SMACT


def test_balance_none_measures_only_and_results_are_read_only():
    x = np.vstack([fractions(Na=0.6, Cl=0.39, K=0.01), rows("NaCl")[0]])
    result = balance_valence(x, VOCAB, "none")
    np.testing.assert_allclose(result.x[0], fractions(Na=0.6 / 0.99, Cl=0.39 / 0.99))  # thresholded
    assert result.valence.tolist() == result.valence_raw.tolist()
    assert result.iterations.tolist() == [0, 0] and result.neutral_fraction == 0.5
    with pytest.raises(ValueError, match="read-only"):
        result.x[0, 0] = 1.0


def test_balance_rejects_bad_arguments():
    with pytest.raises(ValueError, match="unknown balancing method 'magic'"):
        balance_valence(rows("NaCl"), VOCAB, "magic")
    with pytest.raises(ValueError, match=r"shape \(2, 3\)"):
        balance_valence(np.ones((2, 3)), VOCAB, "none")
    with pytest.raises(ValueError, match="unknown oxidation table 'weird'"):
        balance_valence(rows("NaCl"), VOCAB, "mh", oxidation="weird")


def test_smact_validity():
    assert smact_valid(["NaCl", "NaCl2", "", "Fe2O3"]).tolist() == [True, False, False, True]
    assert smact_valid([]).shape == (0,)


def test_assignments_beyond_numpys_32_dimensions():
    from stoichgen.chem.oxidation import assignments as _assignments

    states = [(1,)] * 33 + [(2, 3)]
    out = _assignments(states)
    assert out.shape == (2, 34) and out[:, -1].tolist() == [2.0, 3.0] and (out[:, :33] == 1).all()
    small = _assignments([(1, 2), (-1, -2, -3)])
    assert small.tolist() == [[1, -1], [1, -2], [1, -3], [2, -1], [2, -2], [2, -3]]
