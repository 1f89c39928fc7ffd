"""Commands about data and runs: ``data info``, ``train``, ``evaluate``, ``reproduce``."""

from __future__ import annotations

import argparse
import sys

from stoichgen.cli.common import COMMANDS, SEED, int_in
from stoichgen.data import Dataset, DataSource, load_csv, load_mp_formation_energy
from stoichgen.discover.pipeline import Generator
from stoichgen.evaluate.runs import evaluate_run, parse_targets
from stoichgen.io import check_output, write_table
from stoichgen.models.cvae import LIKELIHOODS
from stoichgen.options import MAX_STEPS
from stoichgen.predict import MAX_SAMPLES


def _add_data_source(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--csv", metavar="PATH", help="your own CSV instead of the bundled MP set")
    parser.add_argument("--composition-column", default="composition", metavar="C")
    parser.add_argument("--property-column", default="property", metavar="P")


def load_data_from_args(args: argparse.Namespace) -> Dataset:
    if args.csv is None:
        return load_mp_formation_energy()
    return load_csv(args.csv, args.composition_column, args.property_column)


def _data_info(args: argparse.Namespace) -> int:
    dataset = load_data_from_args(args)
    y = dataset.y
    print(f"rows: {len(dataset)}")
    print(f"elements: {len(dataset.vocabulary)} ({' '.join(dataset.vocabulary.symbols)})")
    print(f"property {dataset.property_name!r}: min {y.min():.4g}, max {y.max():.4g}, mean {y.mean():.4g}")
    print(f"columns: x^b {dataset.x_b().shape[1]}, x^bp {dataset.x_bp().shape[1]}")
    print("load report:")
    print(dataset.report.summary())
    return 0


CVAE_OPTIONS = ("likelihood", "kl_weight", "free_bits", "kl_warmup_steps", "latent_dim", "adversary",
                "conditional_prior", "property_weight")  # fmt: skip


def _train(args: argparse.Namespace) -> int:
    from stoichgen.train import train  # only this command needs the training code

    data = None
    if args.csv is not None:
        data = DataSource(args.csv, args.composition_column, args.property_column)
    result = train(
        args.model, args.repr, args.out, preset=args.preset, data=data, steps=args.steps,
        minutes=args.minutes, seed=args.seed, split_seed=args.split_seed,
        train_max_property=args.train_max_property, device=args.device,
        compile=False if args.no_compile else None, resume=args.resume, force=args.force,
        **{name: getattr(args, name) for name in CVAE_OPTIONS},
    )  # fmt: skip
    losses = " ".join(f"{k}={v:.4g}" for k, v in result.last_losses.items())
    print(f"trained {result.steps} steps in {result.elapsed_s:.0f} s -> {result.run_dir}  {losses}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    if args.output is not None:
        check_output(args.output, args.force)  # refuse before the (minutes of) work
    table = evaluate_run(args.run_dir, parse_targets(args.targets), args.n, args.seed, args.judge,
                         generator_for=Generator)  # fmt: skip
    # one column per metric set: the sets have different fields
    shown = table.set_index("metric").T.dropna(how="all")
    print(shown.to_string(float_format=lambda v: f"{v:.3f}", na_rep=""))
    if args.output is not None:
        write_table(table, args.output, force=args.force)
    return 0


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _reproduce(args: argparse.Namespace) -> int:
    from stoichgen.paper import Plan, reproduce  # trains: only this command needs the training code

    plan = Plan.quick_plan() if args.quick else Plan.full()
    report = reproduce(plan, args.out, log=_log, workers=args.workers, ray=args.ray)
    print(f"report: {report}")
    return 0


def add_data(commands) -> None:
    data = commands.add_parser("data", help=COMMANDS["data"][1])
    data_commands = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)
    info = data_commands.add_parser("info", help="row count, elements, property range, bad-row report")
    _add_data_source(info)
    info.set_defaults(handler=_data_info)


def add_train(commands) -> None:
    tr = commands.add_parser("train", help=COMMANDS["train"][1])
    tr.add_argument("--model", required=True, choices=["cgan", "cvae", "dnn", "surrogate"])
    tr.add_argument("--repr", required=True, choices=["b", "bp"], help="x^b or x^bp = [x^b, x^p]")
    tr.add_argument("--out", required=True, metavar="RUN_DIR")
    _add_data_source(tr)
    tr.add_argument("--preset", choices=["default", "paper"], help="hyper-parameters (default: default)")
    budget = tr.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=int_in(1, MAX_STEPS), help="generator steps (GAN) or optimiser steps")
    budget.add_argument("--minutes", type=float, help="wall-clock budget instead of steps")
    tr.add_argument("--seed", type=SEED, help="weights and sampling seed (default 0)")
    tr.add_argument("--split-seed", type=SEED, help="seed of the paper's random split (default 0)")
    tr.add_argument(
        "--train-max-property",
        type=float,
        metavar="Y",
        help="extrapolation split (paper Fig. 1B): train on rows with property <= Y instead",
    )
    tr.add_argument("--device", choices=["auto", "cpu", "cuda"])
    tr.add_argument("--no-compile", action="store_true", help="plain eager PyTorch (slower GAN training)")
    vae = tr.add_argument_group("CondVAE (default: the preset's; docs/reproduction/cvae.md)")
    vae.add_argument("--likelihood", choices=LIKELIHOODS, help="p(x | z, y)")
    vae.add_argument("--kl-weight", type=float, help="weight of the KL term (1: the ELBO)")
    vae.add_argument("--free-bits", type=float, help="nats per latent unit the KL term does not penalise")
    vae.add_argument("--kl-warmup-steps", type=int_in(0, MAX_STEPS), help="KL weight ramps up over these")
    vae.add_argument("--latent-dim", type=int_in(1, 4096), help="size of z (the paper: 10)")
    vae.add_argument("--adversary", type=float, help="weight of the adversary keeping z independent of y")
    vae.add_argument("--conditional-prior", action="store_true", default=None, help="learn p(z | y)")
    vae.add_argument("--property-weight", type=float, help="weight of the property loss on prior samples")
    again = tr.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true", help="continue the run in RUN_DIR")
    again.add_argument("--force", action="store_true", help="overwrite a non-empty RUN_DIR")
    tr.set_defaults(handler=_train)


def add_evaluate(commands) -> None:
    ev = commands.add_parser(
        "evaluate",
        help=COMMANDS["evaluate"][1],
        description="For a CondGAN/CondVAE run: n samples per target, near() = nearest composition of the "
        "whole data set in the run's normalised x^b (and x^bp) space, MAE/RMSE of near(y), distance. For a "
        "CondGAN/DNN run: MAE/RMSE of P(.) on the run's test split.",
    )
    ev.add_argument("run_dir", metavar="RUN_DIR")
    ev.add_argument(
        "--targets",
        default="test",
        help="'test' (every test-split property, the paper's protocol) or a list: --targets=-2.0,-1.5",
    )
    ev.add_argument("-n", type=int_in(1, MAX_SAMPLES), default=256, help="samples per target (default 256)")
    ev.add_argument("--seed", type=SEED, default=0)
    ev.add_argument(
        "--judge",
        metavar="DNN_RUN_DIR",
        help="a DNN run on the same split: judges the property of generated compositions independently",
    )
    ev.add_argument("-o", "--output", metavar="FILE", help="also write the table (.csv or .json)")
    ev.add_argument("--force", action="store_true", help="overwrite an existing output file")
    ev.set_defaults(handler=_evaluate)


def add_reproduce(commands) -> None:
    rep = commands.add_parser(
        "reproduce",
        help=COMMANDS["reproduce"][1],
        description="Train every run it needs (or reuse finished ones in REPORT_DIR), evaluate, and write "
        "report.md with the paper's numbers beside ours, PNG figures and CSV files. Re-running resumes.",
    )
    rep.add_argument("--out", required=True, metavar="REPORT_DIR")
    rep.add_argument("--quick", action="store_true", help="small budgets and few targets (minutes)")
    rep.add_argument(
        "--workers", type=int_in(1, 64), default=1, metavar="N",
        help="train N runs at once, in worker processes (default 1: one after another)",
    )  # fmt: skip
    rep.add_argument(
        "--ray", nargs="?", const="auto", metavar="ADDRESS",
        help="train the runs as Ray tasks on a running cluster (ADDRESS, default auto; the report directory "
        "on a shared file system), or 'local'",
    )  # fmt: skip
    rep.set_defaults(handler=_reproduce)
