"""The CondGAN's update (n_critic critic steps, then one generator step) as one compiled pure function.

Used by training only. ``tests/models/test_fast.py`` checks that a few steps equal the textbook loop
(``torch.optim.Adam`` on ``CondGAN.critic_loss`` / ``generator_loss``, double back-propagation).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, Protocol

import torch
from torch import nn
from torch.func import functional_call, grad

from stoichgen.models.cgan import CondGAN
from stoichgen.models.fast import gan as fast_gan


class StepOptions(Protocol):
    """The training options the step reads (``options.TrainOptions`` has them)."""

    n_critic: int
    batch_size: int
    betas: tuple[float, float]
    lr: float
    lr_final_fraction: float
    lr_decay_steps: int | None
    generator_ema: float
    compile: bool


class _Objective(nn.Module):
    """Calls one of ``fast.gan``'s functions on the GAN, so ``torch.func`` can differentiate it in
    given weights."""

    def __init__(self, gan: CondGAN, function: Callable[..., Any]) -> None:
        super().__init__()
        self.gan = gan
        self.function = function

    def forward(self, *tensors: torch.Tensor) -> Any:
        return self.function(self.gan, *tensors)


class _Flat:
    """Named tensors packed into one flat vector, and views of such a vector by name.

    The compiled step takes and returns a handful of flat vectors instead of dozens of small tensors,
    which keeps the per-call guard checks and output copies off the critical path.
    """

    def __init__(self, named: dict[str, torch.Tensor]) -> None:
        self.names = list(named)
        self.shapes = [named[n].shape for n in self.names]
        self.sizes = [named[n].numel() for n in self.names]

    def pack(self, named: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.cat([named[n].reshape(-1) for n in self.names])  # (P,)

    def unpack(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        parts = flat.split(self.sizes)
        return {n: part.view(shape) for n, part, shape in zip(self.names, parts, self.shapes, strict=True)}


def adam_update(
    param: torch.Tensor,
    grad: torch.Tensor,
    m: torch.Tensor,
    v: torch.Tensor,
    t: torch.Tensor,
    lr: torch.Tensor,
    betas: tuple[float, float],
    eps: float = 1e-8,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One step of Adam (as ``torch.optim.Adam``), functional; ``t`` is the 1-based step number.
    Subnormal moments become 0 (``flush_subnormal``)."""
    b1, b2 = betas
    m = flush_subnormal(b1 * m + (1 - b1) * grad)
    v = flush_subnormal(b2 * v + (1 - b2) * grad * grad)
    m_hat = m / (1 - b1**t)
    v_hat = v / (1 - b2**t)
    return param - lr * m_hat / (v_hat.sqrt() + eps), m, v


def adam_scalars(step: int, lr: float, betas: tuple[float, float]) -> tuple[float, float]:
    """``torch.optim.Adam``'s step size ``lr / (1 - b1**t)`` and ``sqrt(1 - b2**t)`` for 0-based ``step``,
    in float64 before any kernel: computed inside a compiled update they would be recomputed (a ``pow``)
    for every vector of every weight.

    >>> adam_scalars(0, 1e-3, (0.9, 0.999))
    (0.010000000000000002, 0.031622776601683805)
    """
    t = step + 1
    return lr / (1 - betas[0] ** t), math.sqrt(1 - betas[1] ** t)


def adam_update_scaled(
    param: torch.Tensor,
    grad: torch.Tensor,
    m: torch.Tensor,
    v: torch.Tensor,
    step_size: torch.Tensor,
    bias2_sqrt: torch.Tensor,
    betas: tuple[float, float],
    eps: float = 1e-8,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One step of Adam in ``torch.optim.Adam``'s own arithmetic, functional, with ``adam_scalars``'
    two numbers as 0-dim tensors (so that a compiled update need not be recompiled per step).
    Subnormal moments become 0 (``flush_subnormal``)."""
    b1, b2 = betas
    m = flush_subnormal(b1 * m + (1 - b1) * grad)
    v = flush_subnormal(b2 * v + (1 - b2) * grad * grad)
    return param - step_size * m / (v.sqrt() / bias2_sqrt + eps), m, v


def flush_subnormal(moment: torch.Tensor) -> torch.Tensor:
    """``moment`` with its subnormal entries (below the smallest normal float) set to 0.

    Adam's moments of a weight whose gradient stays 0 (a first-layer column of an element no batch
    holds) shrink by b1 or b2 each step into subnormal numbers, and squared tiny gradients land there
    directly; arithmetic on them takes an x86 core about a hundred times longer. After 3,000 steps a
    quarter of the surrogate's first moments and a seventh of the CondGAN critic's second moments were
    subnormal. What such a moment adds to a weight is below 1e-30 a step, far under float32's
    resolution of the weights (about 1e-8 for a weight of 0.1), so the weights do not change.
    ``torch.set_flush_denormal`` would not do: it sets the calling thread only, not the threads that
    run a compiled kernel.

    >>> flush_subnormal(torch.tensor([1e-39, -1e-39, 1e-30, 0.5])).tolist()
    [0.0, 0.0, 1.0000000031710769e-30, 0.5]
    """
    return torch.where(moment.abs() < torch.finfo(moment.dtype).tiny, 0.0, moment)


class GANStepper:
    """Runs the authors' update (n_critic critic steps, then one generator step) as one pure function of
    the weights, so that ``torch.compile`` can fuse it into a few kernels: the Python overhead of many
    tiny layers, not arithmetic, bounds an eager loop on a CPU.

    Weights and Adam moments live in flat vectors (``_Flat``). The generator is fixed during the critic
    steps, so the fakes of all of them are drawn in one batched forward pass. On a multi-core CPU each
    batch is cut into two shards, one per core (``fast.gan.affine``); the losses are the same.
    """

    def __init__(self, gan: CondGAN, options: StepOptions, device: torch.device) -> None:
        self.gan = gan
        self.options = options
        self.critic_objective = _Objective(gan, fast_gan.critic_gradients)
        self.generator_objective = _Objective(gan, fast_gan.generator_loss)
        self.generate_objective = _Objective(gan, fast_gan.sample)
        named = {f"gan.{k}": v.detach().to(device) for k, v in gan.named_parameters()}
        self.critic_layout = _Flat({k: v for k, v in named.items() if k.startswith("gan.critic.")})
        self.generator_layout = _Flat({k: v for k, v in named.items() if k.startswith("gan.generator.")})
        self.critic = self.critic_layout.pack(named)  # (P_c,)
        self.generator = self.generator_layout.pack(named)  # (P_g,)
        self.critic_m, self.critic_v = torch.zeros_like(self.critic), torch.zeros_like(self.critic)
        self.generator_m, self.generator_v = (
            torch.zeros_like(self.generator),
            torch.zeros_like(self.generator),
        )
        # the weight average of the generator, what the run saves for sampling (None: not kept)
        self.generator_ema = self.generator.clone() if options.generator_ema > 0 else None
        # the matrix products are too small to split well across cores themselves; two shards do
        self.shards = (
            2 if device.type == "cpu" and torch.get_num_threads() > 1 and options.batch_size % 2 == 0 else 1
        )
        self.step_fn: Callable = self._step
        self._graphs: dict[int, StepGraph] = {}  # captured CUDA graphs by steps per graph
        if options.compile:
            self.step_fn = torch.compile(self._step, options={"cpp_wrapper": device.type == "cpu"})

    def _critic_gradients(self, critic, real, fake, y, eps):
        """The critic loss's gradient as a flat vector (``fast.gan.critic_gradients``) and its terms."""
        grads, logs = functional_call(
            self.critic_objective, self.critic_layout.unpack(critic), (real, fake, y, eps)
        )
        return self.critic_layout.pack({f"gan.critic.{k}": v for k, v in grads.items()}), logs

    def _generator_loss(self, generator, critic, y, z):
        params = {**self.critic_layout.unpack(critic), **self.generator_layout.unpack(generator)}
        return functional_call(self.generator_objective, params, (y, z))

    def _step(self, critic, generator, critic_m, critic_v, generator_m, generator_v, generator_ema,
              ema_decay, t_critic, t_generator, lr, x, y, idx, z, eps):  # fmt: skip
        """x (N, D) and y (N, 1) the training data, idx (C * B,) the rows of the critic batches, z
        (C + 1, B, Z), eps (C, B, 1) for C = n_critic; the last z is the generator step's."""
        betas = self.options.betas
        real, y = gan_batch(x, y, idx, self.options.n_critic)  # (C, B, D), (C + 1, B, 1)
        c, b, d = real.shape

        def shard(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(self.shards, -1, t.shape[-1])  # (S, rows / S, .)

        with torch.no_grad():
            fakes = functional_call(
                self.generate_objective, self.generator_layout.unpack(generator), (shard(y[:c]), shard(z[:c]))
            ).view(c, b, d)  # (C, B, D)
        for k in range(c):
            grads, critic_logs = self._critic_gradients(
                critic, shard(real[k]), shard(fakes[k]), shard(y[k]), shard(eps[k])
            )
            critic, critic_m, critic_v = adam_update(
                critic, grads, critic_m, critic_v, t_critic + k + 1, lr, betas
            )
        grads, generator_logs = grad(self._generator_loss, has_aux=True)(
            generator, critic, shard(y[c]), shard(z[c])
        )
        generator, generator_m, generator_v = adam_update(
            generator, grads, generator_m, generator_v, t_generator + 1, lr, betas
        )
        if generator_ema is not None:
            generator_ema = torch.lerp(generator, generator_ema, ema_decay)
        logs = {**critic_logs, **generator_logs}
        return critic, generator, critic_m, critic_v, generator_m, generator_v, generator_ema, logs

    def step(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        idx: torch.Tensor,
        z: torch.Tensor,
        eps: torch.Tensor,
        step: int,
    ) -> dict:
        """One generator step; shapes as in ``_step``. ``step`` is the 0-based generator step number."""
        c = self.options.n_critic
        # in the weights' precision: Adam's bias corrections 1 - beta^t are computed from these
        scalars = {"dtype": self.critic.dtype, "device": x.device}
        t_critic = torch.tensor(float(step * c), **scalars)
        t_generator = torch.tensor(float(step), **scalars)
        lr = torch.tensor(self.learning_rate(step), **scalars)
        ema_decay = torch.tensor(self.ema_decay(step), **scalars)
        out = self.step_fn(
            self.critic, self.generator, self.critic_m, self.critic_v, self.generator_m, self.generator_v,
            self.generator_ema, ema_decay, t_critic, t_generator, lr, x, y, idx, z, eps,
        )  # fmt: skip
        (self.critic, self.generator, self.critic_m, self.critic_v, self.generator_m, self.generator_v,
         self.generator_ema, logs) = out  # fmt: skip
        return logs

    def graph_steps(self, log_every: int) -> int:
        """Generator steps per captured CUDA graph (``steps``): 1 (no graph) on a CPU or without
        ``compile``; else the largest of 50, 25, 20, 10, 5, 4, 2 that divides ``log_every``, so that log
        lines fall between graphs."""
        if self.critic.device.type != "cuda" or not self.options.compile:
            return 1
        return next(n for n in (50, 25, 20, 10, 5, 4, 2, 1) if log_every % n == 0)

    def steps(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        idx: torch.Tensor,
        z: torch.Tensor,
        eps: torch.Tensor,
        step: int,
        capture: bool = True,
    ) -> dict[str, torch.Tensor]:
        """``len(idx)`` generator steps from 0-based step ``step``: idx (S, C * B), z (S, C + 1, B, Z),
        eps (S, C, B, 1) each step's draws as ``step`` takes them; each logged term as (S,).

        The steps run as one CUDA graph (``capture`` on a GPU): a step of this model is a few hundred
        kernels of microseconds, so launching them, not running them, is what a GPU's time goes to.
        The graph of S steps is captured once, on static buffers, and replayed; the weights stay in
        those buffers between calls. Without ``capture`` the same code runs the steps one by one.
        """
        n = len(idx)
        scalars = torch.tensor(
            [[float((step + i) * self.options.n_critic), float(step + i), self.learning_rate(step + i),
              self.ema_decay(step + i)] for i in range(n)],
            dtype=self.critic.dtype,
        ).to(x.device)  # (S, 4): t_critic, t_generator, lr, ema_decay  # fmt: skip
        if not capture or x.device.type != "cuda":
            return _run_steps(self, x, y, idx, z, eps, scalars)
        if n not in self._graphs:
            run = functools.partial(_run_steps, self, x, y)  # the data stays where it is: not copied
            self._graphs[n] = StepGraph(self, run, [idx, z, eps, scalars])
        return self._graphs[n].replay(idx, z, eps, scalars)

    def state(self) -> list[torch.Tensor]:
        """The tensors one step updates, in ``_step``'s order (the average only when it is kept)."""
        state = [
            self.critic,
            self.generator,
            self.critic_m,
            self.critic_v,
            self.generator_m,
            self.generator_v,
        ]
        return state + ([self.generator_ema] if self.generator_ema is not None else [])

    def set_state(self, state: list[torch.Tensor]) -> None:
        (self.critic, self.generator, self.critic_m, self.critic_v, self.generator_m,
         self.generator_v) = state[:6]  # fmt: skip
        if self.generator_ema is not None:
            self.generator_ema = state[6]

    def ema_decay(self, step: int) -> float:
        """Decay of the generator's weight average at 0-based generator step ``step``:
        min(generator_ema, (1 + step) / (10 + step)), so that the average of a short run is not dominated
        by the untrained start (the warm-up of TensorFlow's ExponentialMovingAverage)."""
        return min(self.options.generator_ema, (1 + step) / (10 + step))

    def learning_rate(self, step: int) -> float:
        """Linear decay from lr to lr * lr_final_fraction over a step budget; constant without one."""
        o = self.options
        if o.lr_decay_steps is None or o.lr_final_fraction == 1.0:
            return o.lr
        progress = min(step / o.lr_decay_steps, 1.0)
        return o.lr * (1 - (1 - o.lr_final_fraction) * progress)

    def sync_to_model(self) -> None:
        """The model gets the critic and, for sampling, the generator's average (if kept) or its weights."""
        generator = self.generator if self.generator_ema is None else self.generator_ema
        weights = {**self.critic_layout.unpack(self.critic), **self.generator_layout.unpack(generator)}
        with torch.no_grad():
            for name, p in self.gan.named_parameters():
                p.copy_(weights[f"gan.{name}"].to(p.device))

    def optimizer_state(self) -> dict:
        """Adam's moments by parameter name (and the raw generator weights when the model holds the
        average, since resuming needs both)."""

        def by_name(layout: _Flat, flat: torch.Tensor) -> dict[str, torch.Tensor]:
            return {k: v.cpu().clone() for k, v in layout.unpack(flat).items()}

        state = {
            "critic": {
                "m": by_name(self.critic_layout, self.critic_m),
                "v": by_name(self.critic_layout, self.critic_v),
            },
            "generator": {
                "m": by_name(self.generator_layout, self.generator_m),
                "v": by_name(self.generator_layout, self.generator_v),
            },
        }
        if self.generator_ema is not None:
            state["generator_weights"] = by_name(self.generator_layout, self.generator)
        return state

    def load(self, state_dict: dict[str, torch.Tensor], optimizer: dict, device: torch.device) -> None:
        """Continue from a checkpoint's model weights and ``optimizer_state()``."""

        def on_device(named: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            return {k: v.to(device) for k, v in named.items()}

        named = on_device({f"gan.{k}": v for k, v in state_dict.items()})
        self.critic = self.critic_layout.pack(named)
        self.generator = self.generator_layout.pack(named)
        if self.generator_ema is not None:
            self.generator_ema = self.generator.clone()
            self.generator = self.generator_layout.pack(on_device(optimizer["generator_weights"]))
        self.critic_m = self.critic_layout.pack(on_device(optimizer["critic"]["m"]))
        self.critic_v = self.critic_layout.pack(on_device(optimizer["critic"]["v"]))
        self.generator_m = self.generator_layout.pack(on_device(optimizer["generator"]["m"]))
        self.generator_v = self.generator_layout.pack(on_device(optimizer["generator"]["v"]))


def _run_steps(stepper: GANStepper, x, y, idx, z, eps, scalars) -> dict[str, torch.Tensor]:
    """S steps in order (``GANStepper.steps``): what a graph captures and a CPU runs."""
    logs = []
    for i in range(len(idx)):
        t_critic, t_generator, lr, ema_decay = scalars[i]  # 0-dim views of (S, 4)
        out = stepper.step_fn(*stepper.state()[:6], stepper.generator_ema, ema_decay, t_critic, t_generator,
                              lr, x, y, idx[i], z[i], eps[i])  # fmt: skip
        stepper.set_state([t for t in out[:7] if t is not None])
        logs.append(out[7])
    return {k: torch.stack([entry[k] for entry in logs]) for k in logs[0]}  # (S,) each


class StepGraph:
    """Several training steps captured as one CUDA graph on static buffers and replayed (used by
    ``GANStepper.steps`` and ``fast.surrogate.SurrogateStepper.steps``).

    ``run(*inputs)`` takes the steps on the stepper's current ``state()`` (moving it on with
    ``set_state``) and returns the logged terms; ``inputs`` are the first call's, copied into static
    buffers that each replay reads. The stepper's state lives in the graph's static buffers between
    replays; steps taken outside the graph meanwhile are copied in first.
    """

    def __init__(self, stepper: Any, run: Callable[..., dict], inputs: list[torch.Tensor]) -> None:
        self.stepper = stepper
        self.inputs = [t.clone() for t in inputs]  # static: replay reads these
        self.state = [t.clone() for t in stepper.state()]  # static: replay updates these in place
        start = stepper.state()
        # warm up off the default stream (compiles, allocates), on copies: the weights do not move
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            stepper.set_state([t.clone() for t in self.state])
            run(*self.inputs)
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        stepper.set_state(self.state)
        with torch.cuda.graph(self.graph):
            self.logs = run(*self.inputs)
            for static, new in zip(self.state, stepper.state(), strict=True):
                static.copy_(new)
        stepper.set_state(start)

    def replay(self, *inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        for static, new in zip(self.inputs, inputs, strict=True):
            static.copy_(new)
        for static, current in zip(self.state, self.stepper.state(), strict=True):
            if static is not current:  # steps ran outside the graph since its last replay
                static.copy_(current)
        self.graph.replay()
        self.stepper.set_state(self.state)
        return {k: v.clone() for k, v in self.logs.items()}  # the next replay overwrites self.logs


def gan_batch(
    x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor, n_critic: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows ``idx`` (C * B,) of the training tensors as the stepper takes them: real (C, B, D) and
    y (C + 1, B, 1), the generator step conditioning on the last critic batch's properties, as in the
    authors' code."""
    real = x.index_select(0, idx).view(n_critic, -1, x.shape[1])  # (C, B, D)
    prop = y.index_select(0, idx).view(n_critic, -1, 1)  # (C, B, 1)
    return real, torch.cat([prop, prop[-1:]])  # (C, B, D), (C + 1, B, 1)
