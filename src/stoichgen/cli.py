"""The ``stoichgen`` command line.

stoichgen data info                      # the bundled Materials Project set
stoichgen data info --csv my.csv --composition-column formula --property-column band_gap
stoichgen train --model cgan --repr bp --out runs/cgan-bp
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from stoichgen.data import DataError, Dataset, load_csv, load_mp_formation_energy
from stoichgen.train import DataSource, TrainError, train


class CliError(Exception):
    """A user error: printed without a traceback, exit code 2."""


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


def _train(args: argparse.Namespace) -> int:
    data = None
    if args.csv is not None:
        data = DataSource(str(Path(args.csv).resolve()), args.composition_column, args.property_column)
    result = train(
        args.model,
        args.repr,
        args.out,
        preset=args.preset,
        data=data,
        steps=args.steps,
        minutes=args.minutes,
        seed=args.seed,
        split_seed=args.split_seed,
        device=args.device,
        compile=False if args.no_compile else None,
        resume=args.resume,
        force=args.force,
    )
    losses = " ".join(f"{k}={v:.4g}" for k, v in result.last_losses.items())
    print(f"trained {result.steps} steps in {result.elapsed_s:.0f} s -> {result.run_dir}  {losses}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stoichgen",
        description="Generate inorganic compositions at a target property (Sawada et al. 2019).",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    data = commands.add_parser("data", help="inspect the bundled data set or your own CSV")
    data_commands = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)
    info = data_commands.add_parser("info", help="row count, elements, property range, bad-row report")
    _add_data_source(info)
    info.set_defaults(handler=_data_info)

    tr = commands.add_parser("train", help="train a CondGAN, CondVAE or DNN into a run directory")
    tr.add_argument("--model", required=True, choices=["cgan", "cvae", "dnn"])
    tr.add_argument("--repr", required=True, choices=["b", "bp"], help="x^b or x^bp = [x^b, x^p]")
    tr.add_argument("--out", required=True, metavar="RUN_DIR")
    _add_data_source(tr)
    tr.add_argument("--preset", default="default", choices=["default", "paper"])
    budget = tr.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=int, help="generator steps (GAN) or optimiser steps")
    budget.add_argument("--minutes", type=float, help="wall-clock budget instead of steps")
    tr.add_argument("--seed", type=int, help="weights and sampling seed (default 0)")
    tr.add_argument("--split-seed", type=int, help="seed of the paper's random split (default 0)")
    tr.add_argument("--device", choices=["auto", "cpu", "cuda"])
    tr.add_argument("--no-compile", action="store_true", help="plain eager PyTorch (slower GAN training)")
    again = tr.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true", help="continue the run in RUN_DIR")
    again.add_argument("--force", action="store_true", help="overwrite a non-empty RUN_DIR")
    tr.set_defaults(handler=_train)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except (DataError, TrainError, CliError) as err:
        print(f"stoichgen: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
