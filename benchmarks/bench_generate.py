"""Wall time of one ``stoichgen generate -n 256 --balance mh`` after import: load, generate, write a CSV.

Trains nothing: it times an existing run (``--model RUN_DIR``; default: the bundled model, if present).
Each repeat is what one CLI call does after Python has imported stoichgen, in a fresh ``Generator``:
``Generator.from_run`` (checkpoint, cached ``reference.npz``) + ``.generate(target, n, balance)``
(sampling, constraints, thresholding, balancing, SMACT, P(x), nearest neighbours, novelty) + writing the
rows to a CSV file. The first repeat also pays the process's one-time costs (SMACT's tables, the charge
module's per-element-set caches), as a CLI call does; later repeats show the warm in-process time.
If the run has no ``reference.npz`` yet, it is built first and its time reported separately (once per run;
a CLI call on such a run pays it once).

Run:  python benchmarks/bench_generate.py [--model RUN_DIR] [--target -2.0] [-n 256] [--balance mh]
      [--repeats 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

from stoichgen.discover.pipeline import DEFAULT_MODEL, Generator
from stoichgen.discover.reference import REFERENCE, write_reference
from stoichgen.errors import GenerateWarning
from stoichgen.io import write_table
from stoichgen.run import bundled_run_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", metavar="RUN_DIR", help="run directory (default: the bundled model)")
    parser.add_argument("--target", type=float, default=-2.0)
    parser.add_argument("-n", type=int, default=256)
    parser.add_argument("--balance", default="mh", choices=["none", "mh", "exact"])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    run_dir = Path(args.model) if args.model else bundled_run_dir(DEFAULT_MODEL)
    if not (run_dir / "checkpoint.pt").is_file():
        parser.error(f"no checkpoint in {run_dir}; pass --model RUN_DIR")
    if not (run_dir / REFERENCE).is_file():
        start = time.perf_counter()
        write_reference(run_dir)
        print(f"built {REFERENCE} (once per run): {time.perf_counter() - start:.2f} s")
    warnings.simplefilter("ignore", GenerateWarning)
    with tempfile.TemporaryDirectory() as tmp:
        times = []
        for repeat in range(args.repeats):
            out = Path(tmp) / f"out{repeat}.csv"
            start = time.perf_counter()
            generator = Generator.from_run(run_dir)
            loaded = time.perf_counter()
            frame = generator.generate(args.target, n=args.n, balance=args.balance, method="paper")
            generated = time.perf_counter()
            write_table(frame, out)
            end = time.perf_counter()
            times.append(end - start)
            print(
                f"repeat {repeat}: {end - start:.3f} s wall (load {loaded - start:.3f}, generate "
                f"{generated - loaded:.3f}, write {end - generated:.3f}); {len(frame)} rows, "
                f"{frame['charge_neutral'].mean():.2f} neutral, {frame['smact_valid'].mean():.2f} SMACT-valid"
            )
    print(
        f"{run_dir}: n={args.n} balance={args.balance}: first {times[0]:.3f} s (as one CLI call after "
        f"import), best warm {min(times[1:] or times):.3f} s"
    )


if __name__ == "__main__":
    main()
