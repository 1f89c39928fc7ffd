"""The reproduction's report: the paper's numbers beside ours, figures and CSV files, assembled from
whatever evaluation pieces are finished (``report_template.md`` holds the text).

>>> label("cgan", "bp")
'CondGAN(x^bp)'
>>> plan = Plan.full()
>>> reproduce(plan, "docs/reproduction")                         # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import replace
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from stoichgen.data import PAPER_N_TEST, load_mp_formation_energy
from stoichgen.io import atomic_write_text
from stoichgen.models import MODEL_KINDS, CondGANConfig
from stoichgen.options import PAPER_GENERATOR_STEPS, TrainOptions, make_options
from stoichgen.paper.pieces import TABLE1_TARGET, Store, evaluate_all, pieces
from stoichgen.paper.plan import EXTRAPOLATION_Y_MAX, SPLIT_MODELS, TABLE5_TARGETS, Plan, run_specs, train_all
from stoichgen.run import CHECKPOINT, RunRecord


def label(model: str, representation: str) -> str:
    """The paper's name of a model, e.g. ``CondGAN(x^bp)``."""
    return f"{MODEL_KINDS[model].label}(x^{representation})"


def report_template() -> str:
    """The text of ``report.md`` with its placeholders (``paper/report_template.md``)."""
    return (resources.files("stoichgen") / "paper" / "report_template.md").read_text(encoding="utf-8")


# The paper's numbers (mean, std over three random splits), Sec. 6.
PAPER_TABLE2 = {
    ("cvae", "b", "b"): ((0.53, 0.11), (0.64, 0.11), (4.45, 0.07)),
    ("cgan", "b", "b"): ((0.53, 0.05), (0.68, 0.08), (4.97, 0.43)),
    ("cvae", "bp", "b"): ((0.46, 0.13), (0.60, 0.15), (4.67, 0.36)),
    ("cvae", "bp", "bp"): ((0.57, 0.11), (0.74, 0.12), (3.13, 0.06)),
    ("cgan", "bp", "b"): ((0.39, 0.01), (0.52, 0.01), (3.81, 0.11)),
    ("cgan", "bp", "bp"): ((0.37, 0.03), (0.46, 0.01), (2.78, 0.07)),
}
PAPER_TABLE4 = {
    ("cgan", "b"): ((0.20, 0.00), (0.30, 0.01)),
    ("cgan", "bp"): ((0.12, 0.00), (0.20, 0.01)),
    ("dnn", "bp"): ((0.10, 0.01), (0.22, 0.03)),
}
PAPER_TABLE5 = {  # |valence|, MAE, RMSE, distance x 1e3
    "none": ((1.02, 0.52), (0.50, 0.19), (0.70, 0.26), (2.49, 0.78)),
    "mh": ((0.19, 0.24), (0.53, 0.16), (0.70, 0.18), (1.63, 0.33)),
}


def _mean_std(values: Sequence[float | None]) -> tuple[float, float] | None:
    """None when no piece is finished; NaN when the pieces hold no finite value (e.g. nothing measurable)."""
    if not values:
        return None
    finite = [v for v in values if v is not None and np.isfinite(v)]
    if not finite:
        return float("nan"), float("nan")
    return float(np.mean(finite)), float(np.std(finite))  # population std over splits, as n is 3


def _pm(value: tuple[float, float] | None, digits: int = 2) -> str:
    if value is None:
        return "pending"
    if not np.isfinite(value[0]):
        return "n/a"
    return f"{value[0]:.{digits}f} ± {value[1]:.{digits}f}"


def _delta(ours: tuple[float, float] | None, paper: tuple[float, float]) -> str:
    return "" if ours is None or not np.isfinite(ours[0]) else f"{ours[0] - paper[0]:+.2f}"


def _markdown(frame: pd.DataFrame) -> str:
    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def _collect(store: Store, plan: Plan, kind: str, run: str) -> list[dict]:
    """The pieces ``kind/split-S/run`` that are finished, over the plan's splits."""
    found = [store.load(f"{kind}/split-{seed}/{run}") for seed in plan.split_seeds]
    return [f for f in found if f is not None]


def _table2_section(store: Store, plan: Plan) -> tuple[str, pd.DataFrame, list[str]]:
    rows, raw, notes = [], [], []
    for (model, representation, space), paper in PAPER_TABLE2.items():
        found = _collect(store, plan, "table2", f"{model}-{representation}-{space}")
        for seed, f in zip(plan.split_seeds, found, strict=False):
            raw.append({"model": label(model, representation), "space": space, "split": seed, **f})
        ours = [_mean_std([f[k] for f in found]) for k in ("mae", "rmse", "distance_e3")]
        rows.append({
            "model": label(model, representation), "near() space": f"x^{space}",
            "MAE paper": _pm(paper[0]), "MAE ours": _pm(ours[0]), "Δ MAE": _delta(ours[0], paper[0]),
            "RMSE paper": _pm(paper[1]), "RMSE ours": _pm(ours[1]),
            "dist×10³ paper": _pm(paper[2]), "dist×10³ ours": _pm(ours[2]), "splits": len(found),
        })  # fmt: skip
        if ours[0] is not None and np.isfinite(ours[0][0]) and abs(ours[0][0] - paper[0][0]) > 0.05:
            notes.append(
                f"{label(model, representation)} in x^{space} space: MAE {ours[0][0]:.2f} against the "
                f"paper's {paper[0][0]:.2f} ({ours[0][0] - paper[0][0]:+.2f} eV/atom)"
            )
    return _markdown(pd.DataFrame(rows)), pd.DataFrame(raw), notes


def _full_protocol_estimate(raw: pd.DataFrame) -> str:
    """Minutes the paper's whole protocol (every test target x 256 samples) takes at the measured speed."""
    if raw.empty:
        return "pending"
    per_sample = raw.groupby("space").apply(
        lambda f: (f["seconds"] / f["n_samples"]).mean(), include_groups=False
    )
    full = PAPER_N_TEST * 256
    return ", ".join(f"x^{space} space {per_sample[space] * full / 60:.0f} min" for space in per_sample.index)


def _quality_section(store: Store, plan: Plan) -> tuple[str, pd.DataFrame]:
    rows, raw = [], []
    for model, representation in SPLIT_MODELS:
        if model == "dnn":
            continue
        found = _collect(store, plan, "quality", f"{model}-{representation}")
        for seed, f in zip(plan.split_seeds, found, strict=False):
            raw.append({"model": label(model, representation), "split": seed, **f})
        ms = {k: _mean_std([f[k] for f in found]) for k in found[0]} if found else {}
        rows.append({
            "model": label(model, representation),
            "uniqueness": _pm(ms.get("uniqueness")), "novelty": _pm(ms.get("novelty")),
            "SMACT valid": _pm(ms.get("smact_valid")), "charge neutral": _pm(ms.get("charge_neutral")),
            "DNN-judged MAE, all": _pm(ms.get("judge_mae")),
            "DNN-judged MAE, novel": _pm(ms.get("judge_mae_novel")), "splits": len(found),
        })  # fmt: skip
    return _markdown(pd.DataFrame(rows)), pd.DataFrame(raw)


def _table4_section(store: Store, plan: Plan) -> tuple[str, pd.DataFrame]:
    rows, raw = [], []
    for (model, representation), paper in PAPER_TABLE4.items():
        found = _collect(store, plan, "table4", f"{model}-{representation}")
        for seed, f in zip(plan.split_seeds, found, strict=False):
            raw.append({"model": label(model, representation), "split": seed, **f})
        mae, rmse = _mean_std([f["mae"] for f in found]), _mean_std([f["rmse"] for f in found])
        rows.append({
            "predictor": ("" if model == "dnn" else "P(.) of ") + label(model, representation),
            "MAE paper": _pm(paper[0]), "MAE ours": _pm(mae), "RMSE paper": _pm(paper[1]),
            "RMSE ours": _pm(rmse), "splits": len(found),
        })  # fmt: skip
    return _markdown(pd.DataFrame(rows)), pd.DataFrame(raw)


def _table5_section(store: Store) -> tuple[str, pd.DataFrame, str]:
    found = store.load("table5")
    if found is None:
        return "pending", pd.DataFrame(), "pending"
    frame = pd.DataFrame(found["rows"])
    names = {"none": "Raw", "mh": "Modified (MH)", "exact": "Exactly balanced (ours)"}
    rows = []
    for method, part in frame.groupby("method", sort=False):
        paper = PAPER_TABLE5.get(method)
        ours = [_mean_std(part[k].tolist()) for k in ("abs_valence", "mae", "rmse", "distance_e3")]
        row = {"": names[method]}
        for title, mine, theirs in zip(("abs valence", "MAE", "RMSE", "dist×10³"), ours, paper or [None] * 4,
                                       strict=True):  # fmt: skip
            row[f"{title} paper"] = _pm(theirs) if theirs else "—"
            row[f"{title} ours"] = _pm(mine)
        row["charge neutral ours"] = f"{part['charge_neutral'].mean():.2f}"
        rows.append(row)
    examples = pd.DataFrame(found["examples"]).rename(
        columns={"target": "y", "generated": "generated", "mh": "MH-modified", "exact": "exactly balanced"}
    )
    return _markdown(pd.DataFrame(rows)), frame, _markdown(examples)


def _examples_section(store: Store) -> tuple[str, str]:
    table1 = []
    for model, representation in (("cvae", "b"), ("cvae", "bp"), ("cgan", "b"), ("cgan", "bp")):
        found = store.load(f"table1/{model}-{representation}")
        column = [r["generated"] for r in found["rows"]] if found else ["pending"]
        table1.append(pd.Series(column, name=label(model, representation)))
    table1_md = _markdown(pd.concat(table1, axis=1).fillna(""))
    found = store.load("table3")
    if found is None:
        return table1_md, "pending"
    rows = [
        {
            "y": f"{r['target']:.2f}", "generated": r["generated"],
            "P(x~)": "" if r["predicted"] is None else f"{r['predicted']:.2f}",
            "nearest (normalised)": f"{r['nearest']} ({r['nearest_normalised']})",
            "near(y)": f"{r['near_y']:.2f}",
        }
        for r in found["rows"]
    ]  # fmt: skip
    return table1_md, _markdown(pd.DataFrame(rows))


def _save_figure(fig, ax, xlabel: str, ylabel: str, path: Path, title: str) -> str:
    """Label, write and close a figure; returns its Markdown embedding."""
    import matplotlib.pyplot as plt

    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return f"![{title}]({path.name})"


def _figures(store: Store, out: Path) -> tuple[str, str, pd.DataFrame]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig1a, fig1b, rows = "pending", "pending", []
    found = store.load("fig1a")
    if found is not None:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        colours = ("red", "blue", "green")
        for target, near_y, colour in zip(found["targets"], found["near_y"], colours, strict=True):
            values = np.asarray(near_y, dtype=float)
            ax.hist(values[np.isfinite(values)], bins=40, range=(-4.5, 1.0), alpha=0.5, color=colour,
                    label=f"y = {target:g}")  # fmt: skip
            ax.axvline(target, color=colour, linestyle="--", linewidth=1)
        fig1a = _save_figure(fig, ax, "near(y) [eV/atom]", "samples", out / "fig1a.png", "Fig. 1A")
    curves = [store.load(f"fig1b/cgan-bp-ymax{y:+.1f}") for y in EXTRAPOLATION_Y_MAX]
    if any(c is not None for c in curves):
        fig, ax = plt.subplots(figsize=(6, 3.5))
        for curve, colour in zip(curves, ("red", "green", "blue"), strict=True):
            if curve is None:
                continue
            ax.plot(curve["targets"], curve["rmse"], "o-", color=colour, markersize=3,
                    label=f"trained on y ≤ {curve['y_max']:g}")  # fmt: skip
            ax.axvline(curve["y_max"], color=colour, linestyle=":", linewidth=1)
            rows += [
                {"y_max": curve["y_max"], "target": t, "rmse": r, "mae": m}
                for t, r, m in zip(curve["targets"], curve["rmse"], curve["mae"], strict=True)
            ]
        fig1b = _save_figure(
            fig, ax, "target y [eV/atom]", "RMSE of near(y) [eV/atom]", out / "fig1b.png", "Fig. 1B"
        )
    return fig1a, fig1b, pd.DataFrame(rows)


def _training_summary(plan: Plan, out: Path) -> tuple[str, float]:
    rows, total = [], 0.0
    for spec in run_specs(plan):
        path = out / "runs" / spec.name / CHECKPOINT
        if not path.is_file():
            rows.append({"run": spec.name, "steps": "pending", "minutes": ""})
            continue
        progress = RunRecord.load(path).progress
        total += progress.elapsed_s
        minutes = f"{progress.elapsed_s / 60:.1f}"
        rows.append({"run": spec.name, "steps": progress.step, "minutes": minutes})
    return _markdown(pd.DataFrame(rows)), total


def write_report(plan: Plan, out: Path | str) -> Path:
    """Assemble ``report.md``, the figures and the CSV files from whatever pieces are finished."""
    out = Path(out)
    store = Store(out / "results")
    table2, table2_raw, notes = _table2_section(store, plan)
    full_protocol = _full_protocol_estimate(table2_raw)
    quality, quality_raw = _quality_section(store, plan)
    table4, table4_raw = _table4_section(store, plan)
    table5, table5_raw, table6 = _table5_section(store)
    table1, table3 = _examples_section(store)
    fig1a, fig1b, fig1b_raw = _figures(store, out)
    training, training_s = _training_summary(plan, out)
    evaluation_s = sum(
        json.loads(p.read_text()).get("seconds", 0.0) for p in (out / "results").rglob("*.json")
    ) if (out / "results").is_dir() else 0.0  # fmt: skip
    for name, frame in (("table2", table2_raw), ("quality", quality_raw), ("table4", table4_raw),
                        ("table5", table5_raw), ("fig1b", fig1b_raw)):  # fmt: skip
        if not frame.empty:
            atomic_write_text(out / f"{name}.csv", frame.to_csv(index=False))
    done = sum(store.done(name) for name, _ in pieces(plan))
    kind = "full"
    if plan.quick:
        kind = "QUICK (small training budgets and few targets: not comparable with the paper)"
    steps = ", ".join(
        f"{label(m, r)} {plan.steps_for(m, r):,}"
        for m, r in (("cgan", "bp"), ("cgan", "b"), ("cvae", "bp"), ("dnn", "bp"))
    )
    cgan_steps = plan.steps_for("cgan")
    data = load_mp_formation_energy()
    text = report_template().format(
        kind=kind, command="stoichgen reproduce" + (" --quick" if plan.quick else "") + f" --out {out}",
        steps=steps, splits=", ".join(map(str, plan.split_seeds)), n_targets=plan.n_targets,
        n_samples=plan.n_samples, n_quality=plan.n_quality_targets, done=done, total=len(pieces(plan)),
        training_min=training_s / 60, evaluation_min=evaluation_s / 60, table2=table2, quality=quality,
        table4=table4, table5=table5, table6=table6, table1=table1, table3=table3, fig1a=fig1a, fig1b=fig1b,
        training=training, t1=TABLE1_TARGET, t5=", ".join(f"{t:g}" for t in TABLE5_TARGETS),
        grid=plan.extrapolation_step, first_split=plan.split_seeds[0], full_protocol=full_protocol,
        notes="\n".join(f"- {n}" for n in notes) or "- none above 0.05 eV/atom",
        shorter=PAPER_GENERATOR_STEPS / cgan_steps, cgan_steps=cgan_steps, preset=_describe_cgan_preset(),
        n_rows=len(data), n_dropped=len(data.report.bad_rows), n_test=PAPER_N_TEST,
        paper_steps=f"{PAPER_GENERATOR_STEPS / 1e6:.1f} M",
    )  # fmt: skip
    atomic_write_text(out / "report.md", text)
    return out / "report.md"


def _describe_cgan_preset() -> str:
    """How today's default CondGAN presets (what the report's runs were checked against) depart from
    the paper's, for x^bp and, where it differs, x^b."""
    paper = make_options("cgan", "bp", "paper")

    def describe(o: TrainOptions) -> str:
        parts = [
            f"property weights λ2 = {o.lambda_fake_property:g}, λ3 = {o.lambda_real_property:g} instead of 1",
            f"hidden sizes {o.hidden or 'paper'} instead of {CondGANConfig(x_dim=1).generator_hidden}",
            f"lr {o.lr:g} instead of {paper.lr:g}",
        ]
        if o.n_critic != paper.n_critic:
            parts.append(f"{o.n_critic} critic step(s) per generator step instead of {paper.n_critic}")
        if o.generator_ema:
            parts.append(
                f"samples from a moving average of the generator's weights (decay {o.generator_ema:g})"
            )
        return ", ".join(parts)

    bp, b = make_options("cgan", "bp"), make_options("cgan", "b")
    text = describe(bp)
    if b != replace(bp, representation="b"):
        text = f"for x^bp {text}; for x^b {describe(b)}, {b.steps:,} steps"
    return text


def reproduce(
    plan: Plan, out: Path | str, log: Callable[[str], None] = print, workers: int = 1, ray: str | None = None
) -> Path:
    """Train (or reuse) every run, evaluate every piece not yet done, and write the report.

    What ``stoichgen reproduce`` runs. Interrupt it at any time: called again on the same ``out``, it
    continues an unfinished run from its last checkpoint and skips every finished run and piece.

    Args:
        plan: what to train and evaluate: ``Plan.full()`` (the paper's protocol, hours) or
            ``Plan.quick_plan()`` (small budgets, minutes).
        out: the report directory (runs in ``out/runs/``, pieces in ``out/results/``).
        log: where progress lines go.
        workers: independent runs trained at once in local processes (same weights as one at a time).
        ray: a Ray address (``"auto"``, ``"local"``, ``"HOST:PORT"``) to train the runs on Ray instead.

    Returns:
        The path of ``report.md``.

    Raises:
        ReproduceError: ``out`` holds another plan's runs or files no reproduction made.
    """
    out = Path(out)
    train_all(plan, out, log, workers, ray)
    evaluate_all(plan, out, log)
    return write_report(plan, out)
