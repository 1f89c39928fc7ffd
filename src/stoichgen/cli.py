"""The ``stoichgen`` command line.

stoichgen data info                      # the bundled Materials Project set
stoichgen data info --csv my.csv --composition-column formula --property-column band_gap
stoichgen train --model cgan --repr bp --out runs/cgan-bp
stoichgen generate --model runs/cgan-bp --target -2.0 -n 256 --require O --exclude Pb,Hg,Cd -o out.csv
stoichgen evaluate runs/cgan-bp --targets test -n 256
stoichgen reproduce --quick --out reports/quick
stoichgen serve                          # the web page at http://127.0.0.1:8000
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Callable, Sequence

from stoichgen.chem.balance import BALANCE_METHODS, DEFAULT_MAX_ATOMS, MAX_EXACT_ATOMS
from stoichgen.chem.composition import DEFAULT_THRESHOLD
from stoichgen.chem.oxidation import OXIDATION_TABLES
from stoichgen.data import Dataset, DataSource, load_csv, load_mp_formation_energy, read_table
from stoichgen.discover.guided import OBJECTIVES
from stoichgen.discover.output import check_output, write_table
from stoichgen.discover.pipeline import (
    DEFAULT_MODEL,
    GENERATE_MAX_ITERATIONS,
    MAX_ITERATIONS,
    MAX_ROWS,
    METHODS,
    Generator,
)
from stoichgen.discover.stability import annotate, hull_of, plot_hull
from stoichgen.errors import SEED_MAX, GenerateWarning, InputError, StoichgenError
from stoichgen.evaluate.runs import evaluate_run, parse_targets
from stoichgen.options import MAX_STEPS
from stoichgen.predict import MAX_SAMPLES
from stoichgen.run import bundled_run_dir

EXIT_USER_ERROR = 2
# The library names its arguments in messages; the command line shows its own flags instead.
FLAG_NAMES = {
    "without resume=True": "without --resume",
    "resume=True": "--resume",
    "force=True": "--force",
    "model=RUN_DIR": "--model RUN_DIR",
    "out=DIR": "--out DIR",
}
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report Ctrl-C


def int_in(minimum: int, maximum: int) -> Callable[[str], int]:
    """An argparse type: an integer within [minimum, maximum], else a usage error naming the range."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if not minimum <= value <= maximum:
            raise argparse.ArgumentTypeError(f"{value} is outside {minimum}..{maximum:,}")
        return value

    return parse


SEED = int_in(0, SEED_MAX)


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
    from stoichgen.train import train  # only this command needs the training code

    data = None
    if args.csv is not None:
        data = DataSource(args.csv, args.composition_column, args.property_column)
    result = train(
        args.model, args.repr, args.out, preset=args.preset, data=data, steps=args.steps,
        minutes=args.minutes, seed=args.seed, split_seed=args.split_seed,
        train_max_property=args.train_max_property, device=args.device,
        compile=False if args.no_compile else None, resume=args.resume, force=args.force,
    )  # fmt: skip
    losses = " ".join(f"{k}={v:.4g}" for k, v in result.last_losses.items())
    print(f"trained {result.steps} steps in {result.elapsed_s:.0f} s -> {result.run_dir}  {losses}")
    return 0


# Columns printed to the terminal when no output file is given (the file has them all).
GUIDED_SHOWN = (
    "formula", "predicted_property", "uncertainty", "e_above_hull", "score", "source", "n_atoms",
    "nearest_formula",
)  # fmt: skip
PAPER_SHOWN = (
    "formula", "composition", "charge_neutral", "smact_valid", "predicted_property", "nearest_formula",
    "nearest_property", "novel",
)  # fmt: skip


# the paper pipeline's options: given only when the user set them (the guided method refuses them)
PAPER_OPTIONS = ("balance", "oxidation", "threshold", "neutral_only", "max_iterations", "unique")


def _generate(args: argparse.Namespace) -> int:
    if args.output is not None:
        check_output(args.output, args.force)  # refuse before any work
    if args.model:
        generator = Generator.from_run(args.model, args.surrogate, args.formation_energy)
    else:
        generator = Generator.default() if args.surrogate is None else Generator.from_run(
            bundled_run_dir(DEFAULT_MODEL), surrogate=args.surrogate
        )  # fmt: skip
    if args.target is None and args.objective != "stability":
        raise InputError("give a target property value (--target Y), or --objective stability")
    targets = None if args.target is None else (args.target if len(args.target) > 1 else args.target[0])
    paper_options = {
        name: getattr(args, name) for name in PAPER_OPTIONS if getattr(args, name) not in (None, False)
    }
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", GenerateWarning)
        frame = generator.generate(
            targets,
            args.n,
            objective=args.objective,
            method=args.method,
            include_known=args.include_known,
            max_e_hull=args.max_e_hull,
            elements=args.elements,
            require=args.require,
            exclude=args.exclude,
            max_elements=args.max_elements,
            seed=args.seed,
            max_atoms=args.max_atoms,
            **paper_options,
        )
    for warning in caught:
        if issubclass(warning.category, GenerateWarning):
            print(f"stoichgen: warning: {warning.message}", file=sys.stderr)
        else:
            warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)
    a = frame.attrs
    if args.method == "paper":
        reasons = f"{a['redrawn_empty']} empty, {a['redrawn_constraint']} against constraints"
        if args.neutral_only:
            reasons += f", {a['redrawn_not_neutral']} not neutral"
        print(
            f"generated {len(frame)} compositions ({a['balance']} balancing): "
            f"{int(frame['charge_neutral'].sum())} charge neutral, {int(frame['smact_valid'].sum())} "
            f"SMACT-valid, {int(frame['novel'].sum())} novel; redrawn {a['redrawn']} samples ({reasons}); "
            f"dropped {a['dropped']}; duplicates removed {a['duplicates_removed']}",
            file=sys.stderr,
        )
        shown = PAPER_SHOWN
    else:
        first_term = "predicted e_above_hull" if args.objective == "stability" else "|predicted - target|"
        print(
            f"generated {len(frame)} candidates (guided search): all SMACT-valid, "
            f"{int(frame['intermetallic'].sum())} intermetallic, {int(frame['novel'].sum())} novel; ranked "
            f"by score = {first_term} "
            "+ uncertainty + realism terms (see --help)",
            file=sys.stderr,
        )
        shown = GUIDED_SHOWN
    if args.output is not None:
        path = write_table(frame, args.output, force=args.force)
        print(f"wrote {len(frame)} rows to {path}", file=sys.stderr)
        return 0
    columns = ["target", *shown] if args.target is not None and len(args.target) > 1 else list(shown)
    if frame.empty:
        print("(no compositions)")
    else:
        print(frame[columns].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    if args.output is not None:
        check_output(args.output, args.force)  # refuse before the (minutes of) work
    table = evaluate_run(args.run_dir, parse_targets(args.targets), args.n, args.seed, args.judge)
    # one column per metric set: the sets have different fields
    shown = table.set_index("metric").T.dropna(how="all")
    print(shown.to_string(float_format=lambda v: f"{v:.3f}", na_rep=""))
    if args.output is not None:
        write_table(table, args.output, force=args.force)
    return 0


def _hull(args: argparse.Namespace) -> int:
    if args.output is not None:
        check_output(args.output, args.force)  # refuse before any work
    table = read_table(args.file, args.composition_column, args.property_column, allow_empty=True)
    if args.reference is None:
        reference = load_mp_formation_energy()
    else:
        reference = load_csv(
            args.reference, args.reference_composition_column, args.reference_property_column
        )
    hull = hull_of(reference)
    out = annotate(table, args.composition_column, args.property_column, hull)
    bad = out[out["hull_error"] != ""]
    for row, reason in zip(bad.index, bad["hull_error"], strict=True):
        print(f"stoichgen: warning: row {row + 2}: {reason}", file=sys.stderr)  # the header is line 1
    print(
        f"{len(out) - len(bad)} of {len(out)} rows on the hull of {len(hull):,} known compounds "
        f"({reference.report.source}); {int((out['e_above_hull'] <= 0).sum())} at or below it",
        file=sys.stderr,
    )
    if args.plot is not None:
        good = out[out["hull_error"] == ""]
        energies = [float(v) for v in good[args.property_column]]
        print(
            f"plot: {plot_hull(hull, list(good[args.composition_column]), energies, args.plot)}",
            file=sys.stderr,
        )
    if args.output is not None:
        write_table(out, args.output, force=args.force)
        print(f"wrote {len(out)} rows to {args.output}", file=sys.stderr)
    else:
        print(out.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return 0


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from stoichgen.web.app import create_app

    app = create_app(args.model)  # the given runs are checked before the server starts
    if args.host not in LOOPBACK:
        print(
            f"stoichgen: warning: binding {args.host} makes the page reachable from other machines; it has "
            "no authentication and each request costs seconds of CPU",
            file=sys.stderr,
        )
    host = f"[{args.host}]" if ":" in args.host else args.host
    models = ", ".join(app.state.service.offered)
    print(
        f"stoichgen: serving {models} at http://{host}:{args.port}/ (Ctrl-C stops)",
        file=sys.stderr,
        flush=True,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def _reproduce(args: argparse.Namespace) -> int:
    from stoichgen.paper import Plan, reproduce  # trains: only this command needs the training code

    plan = Plan.quick_plan() if args.quick else Plan.full()
    report = reproduce(plan, args.out, log=lambda text: print(text, file=sys.stderr, flush=True))
    print(f"report: {report}")
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
    again = tr.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true", help="continue the run in RUN_DIR")
    again.add_argument("--force", action="store_true", help="overwrite a non-empty RUN_DIR")
    tr.set_defaults(handler=_train)

    gen = commands.add_parser(
        "generate",
        help="generate compositions at a target property",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""Candidate compositions at target property values.

--method guided (default): a search over small integer formulas that SMACT accepts (exactly neutral for
one oxidation state per element, cations less electronegative than anions, or metals only), at most
--max-atoms atoms and --max-elements elements (default 4), seeded by the generator's samples at the
target, by known compounds near the target with one element substituted, and by random element sets.
Rows are unique, not in the training split (unless --include-known), and ranked by

    score = |predicted_property - target| + uncertainty
            + 0.3 x (share of element pairs no training compound holds)
            + 0.003 x atoms per formula unit + 0.02 x elements       (lower is better)

where predicted_property and uncertainty are the surrogate ensemble's mean and calibrated spread.
With --objective stability the first term is the predicted e_above_hull instead (against every known
compound of the bundled set; element sets with a pair that no known binary compound holds are skipped,
since the hull knows nothing there), and --target may be left out. --max-e-hull X keeps candidates at
most X eV/atom above the known hull.

--method paper: the paper's pipeline: CondGAN/CondVAE samples decoded at threshold TH, charge
balanced (--balance), annotated; constraint-violating samples are redrawn, never output.""",
    )  # fmt: skip
    gen.add_argument(
        "--model", metavar="RUN_DIR", help="a generator run directory (default: the bundled model)"
    )
    gen.add_argument("--method", default="guided", choices=METHODS, help="guided (default) or paper")
    gen.add_argument(
        "--surrogate", metavar="RUN_DIR", help="surrogate run for --method guided (default: the bundled one)"
    )
    gen.add_argument(
        "--include-known", action="store_true", help="guided: let training-split formulas through"
    )
    gen.add_argument(
        "--formation-energy", action="store_true",
        help="declare that the --model run's property (your CSV) is a formation energy in eV/atom, so that "
        "hull columns, --max-e-hull and --objective stability apply (the bundled set's always is)",
    )  # fmt: skip
    gen.add_argument(
        "--max-e-hull", type=float, metavar="X",
        help="guided: keep candidates at most X eV/atom above the known hull (formation energies only)",
    )  # fmt: skip
    gen.add_argument(
        "--target", type=float, nargs="+", action="extend", metavar="Y",
        help="target property value(s); repeat or list several (optional with --objective stability)",
    )  # fmt: skip
    gen.add_argument(
        "--objective", default="target", choices=OBJECTIVES,
        help="guided: hit the target (default), or 'stability': lowest predicted e_above_hull",
    )  # fmt: skip
    gen.add_argument(
        "-n", type=int_in(1, MAX_ROWS), default=256,
        help=f"compositions per target (default 256; at most {MAX_ROWS:,} rows per call over all targets)",
    )  # fmt: skip
    gen.add_argument("--balance", choices=BALANCE_METHODS, help="paper: valence balancing (default mh)")
    gen.add_argument("--elements", metavar="A,B,..", help="only these elements may appear")
    gen.add_argument("--require", metavar="A,B,..", help="these elements must appear")
    gen.add_argument("--exclude", metavar="A,B,..", help="these elements must not appear")
    gen.add_argument(
        "--max-elements", type=int_in(1, 118), metavar="K", help="at most K elements per composition"
    )
    gen.add_argument("--neutral-only", action="store_true", help="paper: redraw rows left not charge neutral")
    gen.add_argument("--unique", action="store_true", help="paper: keep one row per reduced formula (first)")
    gen.add_argument("--seed", type=SEED, default=0)
    gen.add_argument(
        "--max-iterations", type=int_in(1, MAX_ITERATIONS),
        help=f"paper: MH iterations (default {GENERATE_MAX_ITERATIONS}; the authors' 10000)",
    )  # fmt: skip
    gen.add_argument(
        "--max-atoms", type=int_in(2, MAX_EXACT_ATOMS), default=DEFAULT_MAX_ATOMS,
        help=f"largest formula unit: guided search, or --balance exact (default {DEFAULT_MAX_ATOMS}, at most "
        f"{MAX_EXACT_ATOMS})",
    )  # fmt: skip
    gen.add_argument("--oxidation", choices=OXIDATION_TABLES, help="paper: oxidation states (default common)")
    gen.add_argument("--threshold", type=float, help=f"paper: TH (default {DEFAULT_THRESHOLD})")
    gen.add_argument("-o", "--output", metavar="FILE", help="write .csv, .parquet or .json (default: print)")
    gen.add_argument("--force", action="store_true", help="overwrite an existing output file")
    gen.set_defaults(handler=_generate)

    ev = commands.add_parser(
        "evaluate",
        help="the paper's Table 2 / Table 4 metrics for one run",
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

    hu = commands.add_parser(
        "hull",
        help="where each row would sit on the convex hull of known compounds",
        description="For every row (a composition and its formation energy in eV/atom), add e_above_hull "
        "(eV/atom; negative: below the known hull), decomposition (the competing products) and n_known "
        "(known compounds in its chemical system), on pymatgen's PhaseDiagram with every element at 0. "
        "Known compounds: the bundled MP set, or --reference CSV. Bad rows are reported by row and reason.",
    )
    hu.add_argument("file", metavar="FILE", help="a CSV of candidates")
    hu.add_argument("--composition-column", default="formula", metavar="C")
    hu.add_argument("--property-column", default="predicted_property", metavar="P", help="eV/atom")
    hu.add_argument("--reference", metavar="CSV", help="known compounds instead of the bundled MP set")
    hu.add_argument("--reference-composition-column", default="composition", metavar="C")
    hu.add_argument("--reference-property-column", default="property", metavar="P")
    hu.add_argument("--plot", metavar="PNG", help="the phase diagram of a ternary or quaternary system")
    hu.add_argument("-o", "--output", metavar="FILE", help="write .csv, .parquet or .json (default: print)")
    hu.add_argument("--force", action="store_true", help="overwrite an existing output file")
    hu.set_defaults(handler=_hull)

    rep = commands.add_parser(
        "reproduce",
        help="reproduce the paper's Tables 1-6 and Figure 1 into REPORT_DIR/report.md",
        description="Train every run it needs (or reuse finished ones in REPORT_DIR), evaluate, and write "
        "report.md with the paper's numbers beside ours, PNG figures and CSV files. Re-running resumes.",
    )
    rep.add_argument("--out", required=True, metavar="REPORT_DIR")
    rep.add_argument("--quick", action="store_true", help="small budgets and few targets (minutes)")
    rep.set_defaults(handler=_reproduce)

    web = commands.add_parser(
        "serve",
        help="the web page: a periodic table, a target, candidates with plots and downloads",
        description="Start the web page and its HTTP API (GET /api/models, POST /api/generate; see the "
        "README) on a local address. Models offered: the bundled ones and each --model RUN_DIR.",
    )
    web.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)"
    )
    web.add_argument("--port", type=int_in(1, 65535), default=8000, help="port (default 8000)")
    web.add_argument(
        "--model",
        metavar="RUN_DIR",
        action="append",
        default=[],
        help="also offer this generator run (repeat)",
    )
    web.set_defaults(handler=_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (2 for a user error, 130 when interrupted)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        return args.handler(args)
    except StoichgenError as err:
        message = str(err)
        for words, flag in FLAG_NAMES.items():
            message = message.replace(words, flag)
        print(f"stoichgen: error: {message}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("stoichgen: interrupted (files already written are kept)", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
