"""Commands of discovery: ``generate``, ``hull``, ``serve``."""

from __future__ import annotations

import argparse
import socket
import sys
import warnings

from stoichgen.cli import verify as verify_cli
from stoichgen.cli.common import COMMANDS, int_in
from stoichgen.discover.options import DEFAULT_MODEL, MAX_GENERATE_ROWS, METHODS, OptionSpec, option_specs
from stoichgen.errors import GenerateWarning, InputError
from stoichgen.io import check_figure, check_output, write_table
from stoichgen.space.score import describe_score

# The handlers import the models, the hull and the web app when they run: `generate --help` loads none.

# Columns printed to the terminal when no output file is given (the file has them all).
GUIDED_SHOWN = (
    "formula", "predicted_property", "uncertainty", "e_above_hull", "score", "source", "n_atoms",
    "nearest_formula",
)  # fmt: skip
PAPER_SHOWN = (
    "formula", "composition", "charge_neutral", "smact_valid", "predicted_property", "nearest_formula",
    "nearest_property", "novel",
)  # fmt: skip


def option_flag(name: str) -> str:
    """The command-line flag of a generation option: ``max_atoms`` -> ``--max-atoms``."""
    return "--" + name.replace("_", "-")


def option_help(spec: OptionSpec, methods: tuple[str, ...]) -> str:
    """An option's help as the CLI prints it: the method it belongs to first, when only one takes it."""
    return spec.help if len(methods) > 1 else f"{methods[0]}: {spec.help}"


class RangeEnd(argparse.Action):
    """One end of a range option: ``--target-min A`` and ``--target-max B`` fill ``target_range`` with
    ``[A, B]`` (an end not given stays None: open)."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        ends = list(getattr(namespace, self.dest) or (None, None))
        ends[0 if str(option_string).endswith("-min") else 1] = values
        setattr(namespace, self.dest, ends)


def range_flags(name: str) -> tuple[str, str]:
    """The two flags of a range option: ``target_range`` -> ``--target-min``, ``--target-max``."""
    base = option_flag(name.removesuffix("_range"))
    return f"{base}-min", f"{base}-max"


def add_options(parser: argparse.ArgumentParser) -> None:
    """One flag per option of ``discover.options`` (two for a range: its minimum and maximum), each left
    None when not given (the method's default applies, and another method's option is refused only when
    the user set it)."""
    for name, (spec, _default, methods) in option_specs().items():
        flag, text = option_flag(name), option_help(spec, methods)
        if spec.kind == "range":
            low, high = range_flags(name)
            parser.add_argument(low, dest=name, type=float, action=RangeEnd, metavar="A", help=text)
            more = f"the range's maximum (with {low}; either may be left out: open)"
            parser.add_argument(high, dest=name, type=float, action=RangeEnd, metavar="B", help=more)
        elif spec.kind == "bool":
            parser.add_argument(flag, action="store_true", default=None, help=text)
        elif spec.kind == "choice":
            parser.add_argument(flag, choices=spec.choices, help=text)
        elif spec.kind == "int":
            bounds = int_in(int(spec.low), int(spec.high))  # type: ignore[arg-type]
            parser.add_argument(flag, type=bounds, metavar=spec.metavar, help=text)
        elif spec.kind == "float":
            parser.add_argument(flag, type=float, metavar=spec.metavar, help=text)
        else:
            parser.add_argument(flag, metavar=spec.metavar, help=text)


def _generate(args: argparse.Namespace) -> int:
    from stoichgen.chem.hull import read_hull
    from stoichgen.discover.pipeline import Generator
    from stoichgen.run import bundled_run_dir

    if args.output is not None:
        check_output(args.output, args.force)  # refuse before any work
    given = [f for f, v in (("--trials", args.trials), ("--steps", args.steps), ("--budget", args.budget_s),
                            ("--max-cell-atoms", args.max_cell_atoms), ("--cif-dir", args.cif_dir),
                            ("--ray", args.ray), ("--device", args.device)) if v is not None]  # fmt: skip
    if given and args.verify is None:
        raise InputError(f"{', '.join(given)} apply with --verify K only", field="verify")
    if args.verify is not None:
        from stoichgen.verify import require_extra

        if args.method != "guided":
            raise InputError("--verify applies to method 'guided' only", field="verify")
        require_extra()  # before any model loads
    if args.reference is not None and args.method != "guided":
        raise InputError("--reference applies to method 'guided' only", field="reference")
    if args.target is None and args.objective != "stability" and args.target_range is None:
        raise InputError("give a target property value (--target Y), a range (--target-min A --target-max "
                         "B), or --objective stability")  # fmt: skip
    hull = None
    if args.reference is not None:  # read (and refused, naming its bad rows) before any model loads
        hull = read_hull(args.reference, args.reference_composition_column, args.reference_property_column)
    if args.model:
        generator = Generator.from_run(args.model, args.surrogate, args.formation_energy, hull)
    else:
        generator = Generator.default(hull) if args.surrogate is None else Generator.from_run(
            bundled_run_dir(DEFAULT_MODEL), surrogate=args.surrogate, hull=hull
        )  # fmt: skip
    targets = None if args.target is None else (args.target if len(args.target) > 1 else args.target[0])
    options = {name: getattr(args, name) for name in option_specs() if getattr(args, name) is not None}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", GenerateWarning)
        frame = generator.generate(targets, args.n, method=args.method, **options)
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
            f"SMACT-valid, {_novelty(frame)}; redrawn {a['redrawn']} samples ({reasons}); "
            f"dropped {a['dropped']}; duplicates removed {a['duplicates_removed']}",
            file=sys.stderr,
        )
        shown = PAPER_SHOWN
    else:
        first_term = "predicted e_above_hull" if args.objective == "stability" else "|predicted - target|"
        spread_term = "+ uncertainty "
        if args.target_range is not None:
            low, high = a["target_range"]
            first_term, spread_term = f"1 - p_in_range [{low:g}, {high:g}]", ""
        print(
            f"generated {len(frame)} candidates (guided search): all SMACT-valid, "
            f"{int(frame['intermetallic'].sum())} intermetallic, {_novelty(frame)}; ranked "
            f"by score = {first_term} "
            f"{spread_term}+ realism terms (see --help)",
            file=sys.stderr,
        )
        shown = GUIDED_SHOWN if args.target_range is None else ("p_in_range", *GUIDED_SHOWN)
    if args.verify is not None:
        from stoichgen.verify import verify_frame

        frame = verify_frame(frame, args.verify, **verify_cli.run_kwargs(args))
        print(f"stoichgen: {verify_cli.summary(frame)}", file=sys.stderr)
        shown = (*shown, "verified_formation_energy", "verified_e_above_hull", "verify_error")
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


def _novelty(frame) -> str:
    return (f"{int(frame['novel'].sum())} novel (no known compound), "
            f"{int(frame['not_in_training'].sum())} not in the training split")  # fmt: skip


def _hull(args: argparse.Namespace) -> int:
    from stoichgen.chem.hull import read_hull
    from stoichgen.data import load_mp_formation_energy, read_table
    from stoichgen.discover.hull_table import annotate, plot_hull
    from stoichgen.space.score import hull_of

    # every path is refused before any work; the table is written before the picture, so that a picture
    # that cannot be drawn (not a ternary or quaternary system) loses nothing
    if args.output is not None:
        check_output(args.output, args.force)
    if args.plot is not None:
        check_figure(args.plot, args.force, InputError)
    table = read_table(args.file, args.composition_column, args.property_column, allow_empty=True)
    if args.reference is None:
        hull, source = hull_of(load_mp_formation_energy()), load_mp_formation_energy().report.source
    else:  # the same reading as generate --reference: every bad row named, nothing dropped silently
        hull = read_hull(args.reference, args.reference_composition_column, args.reference_property_column)
        source = args.reference
    out = annotate(table, args.composition_column, args.property_column, hull, progress=sys.stderr.isatty())
    bad = out[out["hull_error"] != ""]
    for row, reason in zip(bad.index, bad["hull_error"], strict=True):
        print(f"stoichgen: warning: row {row + 2}: {reason}", file=sys.stderr)  # the header is line 1
    print(
        f"{len(out) - len(bad)} of {len(out)} rows on the hull of {len(hull):,} known compounds "
        f"({source}); {int((out['e_above_hull'] <= 0).sum())} at or below it",
        file=sys.stderr,
    )
    if args.output is not None:
        write_table(out, args.output, force=args.force)
        print(f"wrote {len(out)} rows to {args.output}", file=sys.stderr)
    else:
        print(out.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if args.plot is not None:
        good = out[out["hull_error"] == ""]
        energies = [float(v) for v in good[args.property_column]]
        written = plot_hull(hull, list(good[args.composition_column]), energies, args.plot)
        print(f"plot: {written}", file=sys.stderr)
    return 0


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _listening_socket(host: str, port: int) -> socket.socket:
    """The server's socket, bound now: an unknown host or a taken port is the user's error, said before
    the "serving" line (uvicorn alone would print it after, and exit 3)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError) as err:
        raise InputError(f"host {host!r} cannot be resolved ({getattr(err, 'strerror', None) or err})",
                         field="host") from None  # fmt: skip
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as err:
        sock.close()
        raise InputError(f"cannot listen on {host} port {port}: {err.strerror or err} (another server "
                         "there? choose another --port)", field="port") from None  # fmt: skip
    return sock


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from stoichgen.web.app import create_app

    app = create_app(args.model)  # the given runs are checked before the server starts
    sock = _listening_socket(args.host, args.port)
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
    with sock:
        uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])
    return 0


def add_generate(commands) -> None:
    gen = commands.add_parser(
        "generate",
        help=COMMANDS["generate"][1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""Candidate compositions at target property values.

--method guided (default): a search over small integer formulas that SMACT accepts (exactly neutral for
one oxidation state per element, cations less electronegative than anions, or metals only), at most
--max-atoms atoms and --max-elements elements (default 4), seeded by the generator's samples at the
target, by known compounds near the target with one element substituted, and by random element sets.
Rows are unique, not in the training split (unless --include-known), and ranked by

""" + describe_score() + """

where predicted_property and uncertainty are the surrogate ensemble's mean and calibrated spread.
With --objective stability the first term is the predicted e_above_hull instead (against every known
compound of the bundled set; element sets with a pair that no known binary compound holds are skipped,
since the hull knows nothing there), and takes no --target. --max-e-hull X keeps candidates at
most X eV/atom above the known hull. --reference CSV: your own known compounds (formula, formation
energy in eV/atom) for the hull instead of the bundled set; every bad row is named and refused.
--target-min A --target-max B instead of --target: the first term is 1 - p_in_range, the probability
(normal, mean and calibrated spread) that the property lies in [A, B], and the uncertainty term is
dropped (the probability prices it in); either end may be left out.

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
        "--formation-energy", action="store_true",
        help="declare that the --model run's property (your CSV) is a formation energy in eV/atom, so that "
        "hull columns, --max-e-hull and --objective stability apply (the bundled set's always is)",
    )  # fmt: skip
    gen.add_argument(
        "--target", type=float, nargs="+", action="extend", metavar="Y",
        help="target property value(s); repeat or list several (not with --objective stability)",
    )  # fmt: skip
    gen.add_argument(
        "-n", type=int_in(1, MAX_GENERATE_ROWS), default=256,
        help=f"compositions per target (default 256; at most {MAX_GENERATE_ROWS:,} rows per call over all "
        "targets)",
    )  # fmt: skip
    add_options(gen)
    add_reference(gen, "guided: known compounds (formula, formation energy eV/atom) for e_above_hull and "
                  "--objective stability, instead of the bundled set")  # fmt: skip
    gen.add_argument(
        "--verify", type=int_in(1, 10_000), metavar="K",
        help="guided: give the top K candidates per target a crystal structure and a CHGNet formation energy "
        "(see `stoichgen verify`; needs the verify extra); adds the verified_* columns",
    )  # fmt: skip
    verify_cli.add_search_flags(gen, prefix="with --verify: ")
    gen.add_argument("-o", "--output", metavar="FILE", help="write .csv, .parquet or .json (default: print)")
    gen.add_argument("--force", action="store_true", help="overwrite an existing output file")
    gen.set_defaults(handler=_generate)


def add_reference(parser: argparse.ArgumentParser, text: str) -> None:
    """``--reference CSV`` and its columns, the same for ``generate`` and ``hull``."""
    parser.add_argument("--reference", metavar="CSV", help=text)
    parser.add_argument("--reference-composition-column", default="composition", metavar="C")
    parser.add_argument("--reference-property-column", default="property", metavar="P", help="eV/atom")


def add_hull(commands) -> None:
    hu = commands.add_parser(
        "hull",
        help=COMMANDS["hull"][1],
        description="For every row (a composition and its formation energy in eV/atom), add e_above_hull "
        "(eV/atom; negative: below the known hull), decomposition (the competing products) and n_known "
        "(known compounds in its chemical system), on pymatgen's PhaseDiagram with every element at 0. "
        "Known compounds: the bundled MP set, or --reference CSV. Bad rows are reported by row and reason.",
    )
    hu.add_argument("file", metavar="FILE", help="a CSV of candidates")
    hu.add_argument("--composition-column", default="formula", metavar="C")
    hu.add_argument("--property-column", default="predicted_property", metavar="P", help="eV/atom")
    add_reference(hu, "known compounds instead of the bundled MP set (bad rows are named and refused)")
    hu.add_argument("--plot", metavar="PNG",
                    help="the phase diagram of a ternary or quaternary system (.png, .pdf or .svg)")
    hu.add_argument("-o", "--output", metavar="FILE", help="write .csv, .parquet or .json (default: print)")
    hu.add_argument("--force", action="store_true", help="overwrite an existing output file or plot")
    hu.set_defaults(handler=_hull)


def add_serve(commands) -> None:
    web = commands.add_parser(
        "serve",
        help=COMMANDS["serve"][1],
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
