"""The surrogate ensemble's training step: all K members in one function on stacked weights.

Used by training only. ``SurrogateEnsemble.loss`` with ``torch.optim.Adam`` is the readable reference;
``tests/models/test_fast_surrogate.py`` checks that a few steps of ``SurrogateStepper`` equal it.

Each layer's weights of the K members are one tensor (K, out, in), so the whole update (K forward and
backward passes, Adam on every weight) is one pure function that ``torch.compile`` fuses: the eager
ensemble spends most of its time in the Python of 5 x 3 small layers and 30 Adam parameters. Each
layer's K products are one ``bmm``: ATen runs a ``bmm``'s batch entries on separate threads, which
plain products of this size (one core each in MKL) do not; on a GPU it is fewer kernel launches, and
``SurrogateStepper.steps`` also replays 50 steps at a time as one CUDA graph.

>>> from stoichgen.models.surrogate import SurrogateConfig, SurrogateEnsemble
>>> net = SurrogateEnsemble(SurrogateConfig(x_dim=6, hidden=(4,), members=3))
>>> [tuple(p.shape) for p in stack_members(net)]
[(3, 4, 6), (3, 4), (3, 1, 4), (3, 1)]
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Protocol

import torch
from torch.func import grad

from stoichgen.models.fast.stepper import StepGraph, adam_scalars, adam_update_scaled
from stoichgen.models.layers import linears
from stoichgen.models.surrogate import SurrogateEnsemble


class StepOptions(Protocol):
    """The training options the step reads (``options.TrainOptions`` has them)."""

    lr: float
    betas: tuple[float, float]
    compile: bool


def stack_members(net: SurrogateEnsemble) -> list[torch.Tensor]:
    """The members' weights stacked per layer: [W_0 (K, out, in), b_0 (K, out), W_1, b_1, ...]."""
    layers = [linears(member) for member in net.members]
    stacked = []
    for i in range(len(layers[0])):
        stacked.append(torch.stack([member[i].weight.detach() for member in layers]))  # (K, out, in)
        stacked.append(torch.stack([member[i].bias.detach() for member in layers]))  # (K, out)
    return stacked


def member_parameter_index(net: SurrogateEnsemble) -> list[tuple[int, int]]:
    """For each tensor of ``net.parameters()`` (the reference optimiser's order), which stacked tensor
    (``stack_members``) and which member it is."""
    n_stacked = 2 * len(linears(net.members[0]))
    return [(j, k) for k in range(net.config.members) for j in range(n_stacked)]


def ensemble_loss(
    params: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum over members of each member's MSE on its own batch, and the members' mean MSE:
    ``SurrogateEnsemble.loss`` on stacked weights. x (K, B, D), y (K, B, 1)."""
    n_layers = len(params) // 2
    h = x  # (K, B, D)
    for i in range(n_layers):
        h = torch.baddbmm(params[2 * i + 1].unsqueeze(1), h, params[2 * i].transpose(1, 2))  # (K, B, out)
        if i < n_layers - 1:
            h = h.relu()
    per_member = (h - y).square().mean(dim=(1, 2))  # (K,)
    return per_member.sum(), per_member.mean().detach()


class SurrogateStepper:
    """The surrogate's Adam update of all members at once, on stacked weights (module docstring).

    ``optimizer_state`` / ``load`` read and write ``torch.optim.Adam``'s state dict of the reference loop
    (``net.parameters()``, member by member), so a checkpoint is the same whichever loop wrote it.
    """

    def __init__(self, net: SurrogateEnsemble, options: StepOptions, device: torch.device) -> None:
        self.net = net
        self.options = options
        self.params = [p.to(device) for p in stack_members(net)]
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]
        self.step_fn: Callable = self._step
        self._graphs: dict[int, StepGraph] = {}  # captured CUDA graphs by steps per graph
        if options.compile:
            self.step_fn = torch.compile(self._step, options={"cpp_wrapper": device.type == "cpu"})

    def _step(self, params, m, v, step_size, bias2_sqrt, x, y, rows):
        """One Adam step (``adam_scalars``' two numbers as 0-dim tensors): x (N, D), y (N, 1) the training
        data, rows (K, B) each member's batch."""
        xb, yb = x[rows], y[rows]  # (K, B, D), (K, B, 1)
        grads, (loss, mse) = grad(self._loss, has_aux=True)(params, xb, yb)
        new_params, new_m, new_v = [], [], []
        for p, g, m_, v_ in zip(params, grads, m, v, strict=True):
            p, m_, v_ = adam_update_scaled(p, g, m_, v_, step_size, bias2_sqrt, self.options.betas)
            new_params.append(p)
            new_m.append(m_)
            new_v.append(v_)
        return new_params, new_m, new_v, {"loss": loss, "mse": mse}

    def _loss(self, params, xb, yb):
        loss, mse = ensemble_loss(params, xb, yb)
        return loss, (loss.detach(), mse)

    def step(
        self, x: torch.Tensor, y: torch.Tensor, rows: torch.Tensor, step: int
    ) -> dict[str, torch.Tensor]:
        """Optimiser step ``step`` (0-based) on rows (K, B) of x (N, D), y (N, 1); the logged terms."""
        scalars = torch.tensor(self._scalars(step), dtype=self.params[0].dtype).to(x.device)  # (2,)
        self.params, self.m, self.v, logs = self.step_fn(
            self.params, self.m, self.v, scalars[0], scalars[1], x, y, rows
        )
        return logs

    def _scalars(self, step: int) -> tuple[float, float]:
        return adam_scalars(step, self.options.lr, self.options.betas)

    def graph_steps(self, log_every: int) -> int:
        """Steps per captured CUDA graph (``steps``): 1 (no graph) on a CPU or without ``compile``; else
        the largest of 50, 25, 20, 10, 5, 4, 2 that divides ``log_every``."""
        if self.params[0].device.type != "cuda" or not self.options.compile:
            return 1
        return next(n for n in (50, 25, 20, 10, 5, 4, 2, 1) if log_every % n == 0)

    def steps(
        self, x: torch.Tensor, y: torch.Tensor, rows: torch.Tensor, step: int, capture: bool = True
    ) -> dict[str, torch.Tensor]:
        """Steps ``step``, ``step + 1``, ... on rows (S, K, B), as one CUDA graph on a GPU
        (``stepper.StepGraph``); each logged term as (S,)."""
        n = len(rows)
        scalars = torch.tensor([self._scalars(step + i) for i in range(n)], dtype=self.params[0].dtype).to(
            x.device
        )  # (S, 2): adam_scalars of each step
        if not capture or x.device.type != "cuda":
            return self._run_steps(x, y, rows, scalars)
        if n not in self._graphs:
            run = functools.partial(self._run_steps, x, y)  # the data stays where it is: not copied
            self._graphs[n] = StepGraph(self, run, [rows, scalars])
        return self._graphs[n].replay(rows, scalars)

    def _run_steps(self, x, y, rows, scalars) -> dict[str, torch.Tensor]:
        logs = []
        for i in range(len(rows)):
            step_size, bias2_sqrt = scalars[i]  # 0-dim views of (S, 2)
            self.params, self.m, self.v, entry = self.step_fn(
                self.params, self.m, self.v, step_size, bias2_sqrt, x, y, rows[i]
            )
            logs.append(entry)
        return {k: torch.stack([entry[k] for entry in logs]) for k in logs[0]}  # (S,) each

    def state(self) -> list[torch.Tensor]:
        """The tensors a step updates: weights, then Adam's moments."""
        return [*self.params, *self.m, *self.v]

    def set_state(self, state: list[torch.Tensor]) -> None:
        n = len(self.params)
        self.params, self.m, self.v = list(state[:n]), list(state[n : 2 * n]), list(state[2 * n :])

    def sync_to_model(self) -> None:
        """The model's members get the stacked weights."""
        with torch.no_grad():
            for p, (j, k) in zip(self.net.parameters(), member_parameter_index(self.net), strict=True):
                p.copy_(self.params[j][k].to(p.device))

    def optimizer_state(self, step: int) -> dict:
        """``torch.optim.Adam(net.parameters(), lr, betas).state_dict()`` after ``step`` steps."""
        index = member_parameter_index(self.net)
        state = {
            i: {
                "step": torch.tensor(float(step)),
                "exp_avg": self.m[j][k].cpu().clone(),
                "exp_avg_sq": self.v[j][k].cpu().clone(),
            }
            for i, (j, k) in enumerate(index)
        }
        reference = torch.optim.Adam([torch.zeros(1)], lr=self.options.lr, betas=self.options.betas)
        group = dict(reference.state_dict()["param_groups"][0], params=list(range(len(index))))
        return {"state": state if step > 0 else {}, "param_groups": [group]}

    def load(self, optimizer: dict, device: torch.device) -> None:
        """Continue from a checkpoint: the model's weights and ``optimizer_state``'s (or the reference
        loop's) Adam moments."""
        self.params = [p.to(device) for p in stack_members(self.net)]
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]
        state = optimizer.get("state", {})
        for i, (j, k) in enumerate(member_parameter_index(self.net)):
            if i in state:
                self.m[j][k] = state[i]["exp_avg"].to(device)
                self.v[j][k] = state[i]["exp_avg_sq"].to(device)
