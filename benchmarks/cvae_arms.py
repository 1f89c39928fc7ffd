"""The CondVAE ablation of docs/reproduction/cvae.md: train one arm on split 0 and evaluate it.

Each arm is a CondVAE trained with ``stoichgen.train.train`` (split 0, seed 0, the default preset as it
was before this study, ``BEFORE``, with the arm's changes), then evaluated by ``stoichgen evaluate``'s
own function on the report's 200 Table-2 targets of split 0 (256 samples each, seed 0; near() in x^b
and, for x^bp runs, x^bp space; beyond-the-paper quality on 50 of them, judged by the report's DNN of
split 0), plus how much the encoder uses its latent (active units, KL per unit, on 5,000 training
rows). One JSON file per arm under ``--results``;
``--table`` prints the markdown table of every arm found there.

The evaluation arm (``--thresholds RUN_DIR``) re-scores one run's samples with other decoding rules
before near(): TH 0.03 with renormalisation (the report's), no threshold, TH without
renormalisation, and the raw decoded vector.

Run:  python benchmarks/cvae_arms.py ARM [ARM ...] [--runs /tmp/cvae-arms]
      python benchmarks/cvae_arms.py --table
      python benchmarks/cvae_arms.py --thresholds docs/reproduction/runs/split-0/cvae-b
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stoichgen.chem.composition import threshold_fractions
from stoichgen.data import load_mp_formation_energy, split_dataset
from stoichgen.discover.pipeline import Generator
from stoichgen.evaluate.runs import evaluate_run
from stoichgen.models.cvae import posterior_use
from stoichgen.nearest import NearestIndex
from stoichgen.predict import Sampler
from stoichgen.run import RunRecord
from stoichgen.train import train, training_data

ROOT = Path(__file__).resolve().parents[1]
JUDGE = ROOT / "docs/reproduction/runs/split-0/dnn-bp"
RESULTS = ROOT / "docs/reproduction/cvae"
SPLIT = 0

# The default preset before this study (the first arm); every arm changes it by the options it names.
BEFORE: dict[str, Any] = {"likelihood": "bernoulli", "adversary": 0.0, "property_weight": 0.0}


def _arm(representation: str = "b", **options: Any) -> tuple[str, dict[str, Any]]:
    return representation, options


FIX = {"likelihood": "softmax", "adversary": 100.0, "property_weight": 100.0}  # the default preset now
ARMS: dict[str, tuple[str, dict[str, Any]]] = {
    "bernoulli": _arm(),
    "bernoulli-bp": _arm("bp"),
    "gaussian": _arm(likelihood="gaussian"),
    "softmax": _arm(likelihood="softmax"),
    "bernoulli-beta0.1": _arm(kl_weight=0.1),
    "bernoulli-freebits0.5": _arm(free_bits=0.5),
    "bernoulli-warmup10k": _arm(kl_warmup_steps=10_000),
    "bernoulli-z2": _arm(latent_dim=2),
    "bernoulli-z32": _arm(latent_dim=32),
    "bernoulli-paper-sizes": _arm(hidden=(60, 30)),
    "bernoulli-100k": _arm(steps=100_000),
    "bernoulli-lr1e-4": _arm(lr=1e-4),
    "bernoulli-adversary10": _arm(adversary=10.0),
    "bernoulli-prior": _arm(conditional_prior=True),
    "softmax-prior": _arm(likelihood="softmax", conditional_prior=True),
    "softmax-adversary10": _arm(likelihood="softmax", adversary=10.0),
    "softmax-adversary100": _arm(likelihood="softmax", adversary=100.0),
    "softmax-adversary1000": _arm(likelihood="softmax", adversary=1000.0),
    "softmax-adversary100-wide": _arm(likelihood="softmax", adversary=100.0, hidden=(120, 240)),
    "softmax-property100": _arm(likelihood="softmax", property_weight=100.0),
    "softmax-adversary100-property100": _arm(**FIX),
    "softmax-adversary100-property100-bp": _arm("bp", **FIX),
}


def targets() -> np.ndarray:
    """The report's Table-2 targets of split 0 (paper.pieces._Context.targets)."""
    test = split_dataset(load_mp_formation_energy(), SPLIT).test
    return test.y[np.random.default_rng(SPLIT).choice(len(test), 200, replace=False)]


def latent_use(run_dir: Path) -> dict:
    record = RunRecord.load(run_dir)
    data = training_data(record.load_data(), record.representation, SPLIT)
    rows = torch.randperm(len(data.x), generator=torch.Generator().manual_seed(0))[:5000]
    use = posterior_use(record.model(), data.x[rows], data.y[rows])
    return {"active_units": use.active_units, "kl": use.kl, "kl_per_unit": list(use.kl_per_unit)}


def run_arm(name: str, runs: Path, results: Path) -> dict:
    representation, changes = ARMS[name]
    out = runs / name
    options = BEFORE | changes
    steps = options.pop("steps", None)
    started = time.monotonic()
    done = (out / "checkpoint.pt").is_file() and RunRecord.load(out).progress.step >= (steps or 30_000)
    if not done:
        train("cvae", representation, out, steps=steps, seed=SPLIT, split_seed=SPLIT,
              force=True, progress=False, **options)  # fmt: skip
    trained_s = time.monotonic() - started
    table = evaluate_run(out, targets(), n=256, seed=SPLIT, judge=JUDGE, generator_for=Generator)
    row: dict[str, Any] = {"arm": name, "representation": representation, "options": changes,
                           "train_s": round(trained_s, 1)}  # fmt: skip
    for _, r in table.iterrows():
        if str(r["metric"]).startswith("Table 2"):
            space = "bp" if "x^bp" in r["metric"] else "b"
            row |= {f"mae_{space}": r["mae"], f"rmse_{space}": r["rmse"], f"dist_{space}": r["distance_e3"],
                    f"empty_{space}": int(r["empty"])}  # fmt: skip
        else:
            row |= {k: float(r[k]) for k in ("uniqueness", "novelty", "smact_valid", "judge_mae")}
    row |= latent_use(out)
    results.mkdir(parents=True, exist_ok=True)
    (results / f"{name}.json").write_text(json.dumps(row, indent=1) + "\n")
    return row


def thresholds(run_dir: Path) -> list[dict]:
    """Table-2 MAE in x^b space of one run under other decoding rules before near()."""
    sampler = Sampler.from_run(run_dir)
    dataset = load_mp_formation_energy()
    nearest = NearestIndex.from_dataset(dataset, sampler.normaliser, "b")
    values = targets()
    raw = sampler.sample(values, 256, SPLIT)[:, : len(sampler.vocabulary)]  # (T * n, V), data units
    wanted = np.repeat(values, 256)
    rules = {
        "TH 0.03, renormalised (paper, ours)": threshold_fractions(raw, 0.03),
        "no threshold, renormalised": threshold_fractions(raw, 0.0),
        "TH 0.03, not renormalised": np.where(raw >= 0.03, raw, 0.0),
        "raw decoded vector": raw,
    }
    rows = []
    for rule, x in rules.items():
        distance, index = nearest.query(x)
        error = nearest.y[index] - wanted
        rows.append({"rule": rule, "mae_b": float(np.abs(error).mean()),
                     "rmse_b": float(np.sqrt((error**2).mean())),
                     "dist_b": float(distance.mean() / nearest.dim * 1e3)})  # fmt: skip
    return rows


COLUMNS = (
    ("mae_b", "MAE x^b"), ("rmse_b", "RMSE x^b"), ("dist_b", "dist×10³ x^b"), ("mae_bp", "MAE x^bp"),
    ("rmse_bp", "RMSE x^bp"), ("dist_bp", "dist×10³ x^bp"), ("uniqueness", "unique"), ("novelty", "novel"),
    ("smact_valid", "SMACT"), ("judge_mae", "DNN-judged MAE"), ("active_units", "active units"),
    ("kl", "KL (nats)"),
)  # fmt: skip


def table(results: Path) -> str:
    rows = [json.loads(p.read_text()) for p in sorted(results.glob("*.json")) if p.stem in ARMS]
    rows.sort(key=lambda r: list(ARMS).index(r["arm"]))
    lines = ["| arm | repr | " + " | ".join(label for _, label in COLUMNS) + " |"]
    lines.append("|---" * (len(COLUMNS) + 2) + "|")
    for r in rows:
        cells = []
        for key, _ in COLUMNS:
            value = r.get(key)
            text = "—" if value is None else f"{value:.0f}" if key == "active_units" else f"{value:.2f}"
            cells.append(text)
        lines.append(f"| {r['arm']} | x^{r['representation']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("arms", nargs="*", metavar="ARM", help=", ".join(ARMS))
    parser.add_argument("--runs", type=Path, default=Path("/tmp/cvae-arms"))
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--table", action="store_true", help="print the table of every arm in --results")
    parser.add_argument("--thresholds", type=Path, metavar="RUN_DIR", help="the evaluation arm on one run")
    args = parser.parse_args()
    unknown = sorted(set(args.arms) - set(ARMS))
    if unknown:
        parser.error(f"unknown arms {unknown}; known: {', '.join(ARMS)}")
    for name in args.arms:
        row = run_arm(name, args.runs, args.results)
        print(json.dumps({k: v for k, v in row.items() if k != "kl_per_unit"}))
    if args.thresholds:
        for row in thresholds(args.thresholds):
            print(json.dumps(row))
    if args.table:
        print(table(args.results))


if __name__ == "__main__":
    main()
