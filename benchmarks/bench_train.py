"""Generator steps per second: stoichgen's CondGAN training step against a plain eager PyTorch loop.

Both run the paper's update on CondGAN(x^bp) (147 columns, batch 256, 5 critic steps with gradient
penalty per generator step, Adam(1e-4, (0, 0.9))) on the bundled data, in the same process:

- baseline: the textbook eager loop written below (``torch.optim.Adam``, double back-propagation for the
  gradient penalty via ``torch.autograd.grad(create_graph=True)``);
- stoichgen: ``GANStepper`` (one function per generator step, compiled with ``torch.compile``: the
  critic's gradient written by hand, each batch cut into one shard per core; README: why it is fast).

Run:  python benchmarks/bench_train.py [--steps 300] [--repeats 3]
Prints both rates (best of the repeats, after warm-up/compilation) and the ratio.
"""

from __future__ import annotations

import argparse
import time

import torch

from stoichgen.data import load_mp_formation_energy
from stoichgen.models import CondGAN, CondGANConfig
from stoichgen.models.cgan import textbook_update
from stoichgen.models.fast.stepper import GANStepper, gan_batch
from stoichgen.options import make_options
from stoichgen.train import training_data

BATCH, N_CRITIC, Z_DIM = 256, 5, 10


def eager_loop(gan: CondGAN, x: torch.Tensor, y: torch.Tensor, steps: int, rng: torch.Generator) -> None:
    """The plain loop: what one would write from the paper and the authors' code (``textbook_update``)."""
    opt_g = torch.optim.Adam(gan.generator.parameters(), lr=1e-4, betas=(0.0, 0.9))
    opt_c = torch.optim.Adam(gan.critic.parameters(), lr=1e-4, betas=(0.0, 0.9))
    for _ in range(steps):
        idx = torch.randint(0, len(x), (N_CRITIC * BATCH,), generator=rng)
        real, prop = gan_batch(x, y, idx, N_CRITIC)  # (C, B, D), (C + 1, B, 1)
        z = torch.rand(N_CRITIC + 1, BATCH, Z_DIM, generator=rng) * 2 - 1
        eps = torch.rand(N_CRITIC, BATCH, 1, generator=rng)
        textbook_update(gan, opt_c, opt_g, real, prop, z, eps)


def stoichgen_loop(stepper: GANStepper, x: torch.Tensor, y: torch.Tensor, steps: int, start: int,
                   rng: torch.Generator) -> None:  # fmt: skip
    """The same sampling as ``stoichgen.train`` does per generator step."""
    for step in range(start, start + steps):
        idx = torch.randint(0, len(x), (N_CRITIC * BATCH,), generator=rng)
        z = torch.rand(N_CRITIC + 1, BATCH, Z_DIM, generator=rng) * 2 - 1
        eps = torch.rand(N_CRITIC, BATCH, 1, generator=rng)
        logs = stepper.step(x, y, idx, z, eps, step)
    float(logs["gp"])  # wait for the last step


def timed(fn, steps: int) -> float:
    start = time.perf_counter()
    fn(steps)
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="generator steps per timing")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    prepared = training_data(load_mp_formation_energy(), "bp", split_seed=0)
    x, y = prepared.x, prepared.y
    torch.manual_seed(0)
    rng = torch.Generator().manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, x {tuple(x.shape)}")

    baseline = CondGAN(CondGANConfig(x_dim=x.shape[1]))
    eager_loop(baseline, x, y, 5, rng)  # warm-up
    options = make_options("cgan", "bp", "paper", compile=True)
    stepper = GANStepper(CondGAN(CondGANConfig(x_dim=x.shape[1])), options, torch.device("cpu"))
    start = time.perf_counter()
    stoichgen_loop(stepper, x, y, 2, 0, rng)
    print(f"compilation and warm-up: {time.perf_counter() - start:.1f} s (once per process)")

    eager_rates, fused_rates = [], []
    done = 2
    for _ in range(args.repeats):  # interleaved, so load changes hit both alike
        eager_rates.append(timed(lambda n: eager_loop(baseline, x, y, n, rng), args.steps))
        fused_rates.append(
            timed(lambda n, start=done: stoichgen_loop(stepper, x, y, n, start, rng), args.steps)
        )
        done += args.steps
    eager, fused = max(eager_rates), max(fused_rates)
    runs = {
        name: ", ".join(f"{r:.1f}" for r in rates) for name, rates in (("e", eager_rates), ("f", fused_rates))
    }
    print(f"eager loop:     {eager:8.1f} generator steps/s  (runs: {runs['e']})")
    print(f"stoichgen step: {fused:8.1f} generator steps/s  (runs: {runs['f']})")
    print(f"ratio: {fused / eager:.2f}x  (target >= 5x)")


if __name__ == "__main__":
    main()
