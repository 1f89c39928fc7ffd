"""Generator steps per second: stoichgen's CondGAN training step against a plain eager PyTorch loop.

Both run the paper's update on CondGAN(x^bp) (147 columns, batch 256, 5 critic steps with gradient
penalty per generator step, Adam(1e-4, (0, 0.9))) on the bundled data, in the same process:

- baseline: the textbook eager loop written below (``torch.optim.Adam``, double back-propagation for the
  gradient penalty via ``torch.autograd.grad(create_graph=True)``);
- stoichgen: ``GANStepper`` (one function per generator step, compiled with ``torch.compile``: the
  critic's gradient written by hand, each batch cut into one shard per core; README: why it is fast).

Run:  python benchmarks/bench_train.py [--steps 300] [--repeats 3] [--device cuda] [--preset default]

On a GPU the stoichgen loop replays captured CUDA graphs of 50 compiled steps (``GANStepper.steps``).
Prints both rates (best of the repeats, after warm-up/compilation) and the ratio.
"""

from __future__ import annotations

import argparse
import time

import torch

from common import cpu
from stoichgen.data import load_mp_formation_energy
from stoichgen.models import CondGAN
from stoichgen.models.cgan import textbook_update
from stoichgen.models.fast.stepper import GANStepper, gan_batch
from stoichgen.options import build_model, make_options
from stoichgen.train import training_data

BATCH, Z_DIM = 256, 10


def draws(n_critic: int, n: int, rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One generator step's random draws, on the CPU, as ``stoichgen.train`` takes them."""
    idx = torch.randint(0, n, (n_critic * BATCH,), generator=rng)  # (C * B,)
    z = torch.rand(n_critic + 1, BATCH, Z_DIM, generator=rng) * 2 - 1  # (C + 1, B, Z)
    eps = torch.rand(n_critic, BATCH, 1, generator=rng)  # (C, B, 1)
    return idx, z, eps


def eager_loop(
    gan: CondGAN, options, x: torch.Tensor, y: torch.Tensor, steps: int, rng: torch.Generator
) -> None:
    """The plain loop: what one would write from the paper and the authors' code (``textbook_update``)."""
    opt_g = torch.optim.Adam(gan.generator.parameters(), lr=options.lr, betas=options.betas)
    opt_c = torch.optim.Adam(gan.critic.parameters(), lr=options.lr, betas=options.betas)
    c = options.n_critic
    for _ in range(steps):
        idx, z, eps = (t.to(x.device) for t in draws(c, len(x), rng))
        real, prop = gan_batch(x, y, idx, c)  # (C, B, D), (C + 1, B, 1)
        textbook_update(gan, opt_c, opt_g, real, prop, z, eps)
    float(next(gan.parameters()).detach()[0, 0])  # wait for the device


def stoichgen_loop(stepper: GANStepper, x: torch.Tensor, y: torch.Tensor, steps: int, start: int,
                   rng: torch.Generator) -> None:  # fmt: skip
    """What ``stoichgen.train`` does: one step at a time on a CPU, graphs of ``graph_steps`` on a GPU."""
    c, chunk = stepper.options.n_critic, stepper.graph_steps(100)
    for step in range(start, start + steps, chunk):
        if chunk == 1:
            idx, z, eps = draws(c, len(x), rng)
            logs = stepper.step(x, y, idx.to(x.device), z.to(x.device), eps.to(x.device), step)
        else:
            batch = [draws(c, len(x), rng) for _ in range(chunk)]
            idx, z, eps = (torch.stack(t).to(x.device) for t in zip(*batch, strict=True))
            logs = stepper.steps(x, y, idx, z, eps, step)
    float(logs["gp"].sum())  # wait for the last step


def timed(fn, steps: int) -> float:
    start = time.perf_counter()
    fn(steps)
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="generator steps per timing")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--preset", default="paper", choices=("paper", "default"),
                        help="paper: 5 critic steps, 60-120; default: 1 critic step, 120-240")  # fmt: skip
    args = parser.parse_args()
    device = torch.device(args.device)

    prepared = training_data(load_mp_formation_energy(), "bp", split_seed=0)
    x, y = prepared.x.to(device), prepared.y.to(device)
    torch.manual_seed(0)
    rng = torch.Generator().manual_seed(0)
    where = torch.cuda.get_device_name() if device.type == "cuda" else cpu()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.device}: {where}")
    print(f"x {tuple(x.shape)}, preset {args.preset}")
    options = make_options("cgan", "bp", args.preset, compile=True)
    steps = args.steps - args.steps % 50 or 50  # whole graphs on a GPU

    baseline = build_model(options, x.shape[1]).to(device)
    eager_loop(baseline, options, x, y, 5, rng)  # warm-up
    stepper = GANStepper(build_model(options, x.shape[1]).to(device), options, device)
    start = time.perf_counter()
    warm_up = stepper.graph_steps(100)
    stoichgen_loop(stepper, x, y, 2 * warm_up, 0, rng)
    print(f"compilation and warm-up: {time.perf_counter() - start:.1f} s (once per process)")

    eager_rates, fused_rates = [], []
    done = 2 * warm_up
    for _ in range(args.repeats):  # interleaved, so load changes hit both alike
        eager_rates.append(timed(lambda n: eager_loop(baseline, options, x, y, n, rng), steps))
        fused_rates.append(timed(lambda n, start=done: stoichgen_loop(stepper, x, y, n, start, rng), steps))
        done += steps
    eager, fused = max(eager_rates), max(fused_rates)
    runs = {
        name: ", ".join(f"{r:.1f}" for r in rates) for name, rates in (("e", eager_rates), ("f", fused_rates))
    }
    print(f"eager loop:     {eager:8.1f} generator steps/s  (runs: {runs['e']})")
    print(f"stoichgen step: {fused:8.1f} generator steps/s  (runs: {runs['f']})")
    print(f"ratio: {fused / eager:.2f}x  (target >= 5x on a CPU; >= 2,500 steps/s on an H200)")


if __name__ == "__main__":
    main()
