"""Estimates that survive selection (issue 20, point 2): does what a guided row reports hold up?

(a) On the test split (real compounds the surrogate never saw): the share of errors within one and two
    reported spreads, for the whole ensemble (what was reported before), the selecting members and the
    reporting members (each group with its own factor from the run's calibration rows).
(b) On the candidates the guided search selects at the paper's ten Table-5 targets (256 each), against the
    judge (fitted on the training split, as bench_discovery.py does; no method uses it): the share of rows
    with |judge − reported| within sqrt(σ² + judge MAE²) and within twice that, before (all five members
    select and report) and after (three select, the other two report), with the mean reported error.

Run:  python benchmarks/bench_selection.py [--out docs/discovery/selection.md] [-n 256]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
import warnings

import numpy as np
import pandas as pd

from common import cpu, publish
from stoichgen.chem.composition import formula_fractions
from stoichgen.data import load_mp_formation_energy, split_dataset
from stoichgen.discover.pipeline import Generator
from stoichgen.evaluate.benchmark import TABLE5_TARGETS
from stoichgen.evaluate.judge import Judge
from stoichgen.predict import MemberSplit


def markdown(frame: pd.DataFrame) -> str:
    cells = [
        [f"{v:.3f}" if isinstance(v, float) else str(v) for v in row] for row in frame.itertuples(index=False)
    ]
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in cells])


def arms(split: MemberSplit, whole_scale: float) -> dict[str, MemberSplit]:
    """Before (all members select and report, the stored factor), after (the default split), and all
    members selecting with the reporting members reporting (shows what the split of selection adds)."""
    every = tuple(range(len(split.select) + len(split.report)))
    return {
        "before: 5 select, the same 5 report": MemberSplit(every, every, whole_scale, whole_scale),
        "5 select, 2 of them report": MemberSplit(every, split.report, whole_scale, split.report_scale),
        "after: 3 select, the other 2 report": split,
    }


def reading(test_table: pd.DataFrame, selected: pd.DataFrame) -> str:
    """What the tables say, in numbers taken from them."""
    before, after = selected.iloc[0], selected.iloc[-1]
    one, two = "within √(σ²+MAE²) (≥ 0.60)", "within 2√(σ²+MAE²) (≥ 0.90)"
    test = test_table.iloc[-1]
    return (
        "- Test split: the reporting members' spread covers "
        f"{test['within 1σ (≈ 0.68)']:.2f} of errors within "
        f"1σ (target ≈ 0.68) but only {test['within 2σ (≈ 0.95)']:.2f} within 2σ: two members' standard "
        "deviation is a noisy, heavy-tailed estimate of the error's scale.\n"
        f"- Selected rows: {before[one]:.2f} → {after[one]:.2f} within √(σ² + MAE²) (target ≥ 0.60), "
        f"{before[two]:.2f} → {after[two]:.2f} within twice that (target ≥ 0.90). The reported σ rises from "
        f"{before['mean σ']:.3f} to {after['mean σ']:.3f} eV/atom: selecting on low spread had made the "
        "members that chose a row agree more than their error warrants.\n"
        f"- The mean is not cured: judge − reported is {before['judge − reported']:+.3f} before and "
        f"{after['judge − reported']:+.3f} after, largest at the strongly bound targets. That part of the "
        "optimism is shared by all five members (the same data, the same model family), or is the judge's "
        "own error on such compositions; either way no split of the members removes it; the reported error "
        "rises from "
        f"{before['reported error']:.3f} to {after['reported error']:.3f} (two members average less noise "
        "away than five), and selecting with three members moves the judge MAE to target from "
        f"{before['judge MAE to target']:.3f} to {after['judge MAE to target']:.3f}."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="write the Markdown report here")
    parser.add_argument("-n", type=int, default=256)
    args = parser.parse_args()

    dataset = load_mp_formation_energy()
    split = split_dataset(dataset, 0)
    judge = Judge.fit(split.train)
    judge_mae = float(np.abs(judge.predict_fractions(split.test.x_b()) - split.test.y).mean())
    generator = Generator.default()
    surrogate = generator.surrogate
    default = surrogate.member_split
    whole = float(surrogate.model.spread_scale)

    # (a) the test split
    each = surrogate.members_fractions(split.test.x_b())  # (K, N)
    lines = []
    for label, members, scale in [("all 5 (before)", default.select + default.report, whole),
                                  ("3 selecting", default.select, default.select_scale),
                                  ("2 reporting (after)", default.report, default.report_scale)]:  # fmt: skip
        group = each[list(members)]
        error, spread = np.abs(group.mean(axis=0) - split.test.y), group.std(axis=0) * scale
        lines.append({"members": label, "spread factor": scale, "MAE": float(error.mean()),
                      "within 1σ (≈ 0.68)": float((error <= spread).mean()),
                      "within 2σ (≈ 0.95)": float((error <= 2 * spread).mean()),
                      "median σ": float(np.median(spread))})  # fmt: skip
    test_table = pd.DataFrame(lines)

    # (b) the selected candidates
    lines, per_target = [], []
    for label, member_split in arms(default, whole).items():
        surrogate.__dict__["member_split"] = member_split  # the cached property, set for this arm
        started = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            frame = generator.generate(list(TABLE5_TARGETS), args.n, method="guided")
        seconds = time.perf_counter() - started
        judged = judge.predict_fractions(formula_fractions(frame["formula"].tolist(), surrogate.vocabulary))
        reported, sigma = frame["predicted_property"].to_numpy(), frame["uncertainty"].to_numpy()
        gap, bound = np.abs(judged - reported), np.sqrt(sigma**2 + judge_mae**2)
        lines.append({"arm": label, "rows": len(frame),
                      "within √(σ²+MAE²) (≥ 0.60)": float((gap <= bound).mean()),
                      "within 2√(σ²+MAE²) (≥ 0.90)": float((gap <= 2 * bound).mean()),
                      "reported error": float(gap.mean()),
                      "judge − reported": float((judged - reported).mean()),
                      "mean σ": float(sigma.mean()),
                      "judge MAE to target": float(np.abs(judged - frame["target"].to_numpy()).mean()),
                      "s": seconds})  # fmt: skip
        for target, part in pd.DataFrame({"t": frame["target"], "in": gap <= bound, "gap": gap,
                                          "bias": judged - reported}).groupby("t"):  # fmt: skip
            per_target.append({"arm": label.split(":")[0], "target": float(target),
                               "within 1": float(part["in"].mean()),
                               "reported error": float(part["gap"].mean()),
                               "judge − reported": float(part["bias"].mean())})  # fmt: skip
    surrogate.__dict__["member_split"] = default
    selected = pd.DataFrame(lines)

    text = "\n\n".join([
        "# Estimates that survive selection (the winner's curse)",
        f"Made by `python {' '.join(sys.argv)}` on {cpu()} ({platform.machine()}), 2 cores. Split 0 of the "
        f"bundled MP set; the bundled surrogate `surrogate-bp` (5 members). Judge: bench_discovery.py's "
        "gradient-boosted trees fitted on the training split, "
        f"**test-split MAE {judge_mae:.3f} eV/atom**; no method uses it.",
        f"Spread factors (68.3 % quantile of |error| / std on the run's {len(split.train.y) // 20:,} "
        f"calibration rows, training-split rows no member trained on): all five {whole:.3f} (stored at "
        f"training), selecting members {default.select} {default.select_scale:.3f}, reporting members "
        f"{default.report} {default.report_scale:.3f}.",
        "## Method",
        "Sample splitting (Cox 1975; in genetics against the winner's curse, Zöllner & Pritchard 2007): a"
        " row chosen because an estimate was good is reported with an estimate that took no part in "
        "choosing it. The surrogate's members are independent bootstrap fits, so the split costs no "
        "retraining: `predict.MemberSplit` lets the first three members rank (the guided search's and the"
        " screen's `score`, the `max_e_hull` filter excepted, which keeps rows by the reported "
        "e_above_hull) and the last two report `predicted_property`, `uncertainty`, `e_above_hull` (the "
        "fixed hull moves with the energy) and its uncertainty, and `p_stable` = Φ(−e_above_hull / σ). A "
        "group's standard deviation is not the whole ensemble's, so each group gets its own factor, "
        "fitted as training fitted the stored one: on the calibration rows (`predict.calibration_rows` "
        "redraws train.py's split of them; the whole ensemble's factor comes out as stored, "
        "`tests/test_predict_selection.py`). Neither the test split nor the judge is used for it.",
        "## (a) Test split: the reported spread keeps its coverage", markdown(test_table),
        f"## (b) Guided candidates at the ten Table-5 targets ({args.n} each), against the judge",
        markdown(selected),
        "### Per target", markdown(pd.DataFrame(per_target)),
        "## Reading",
        reading(test_table, selected),
    ])  # fmt: skip
    publish(text, args.out)


if __name__ == "__main__":
    main()
