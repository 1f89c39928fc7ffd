"""Training runs: the training loops, periodic checkpoints and resumption (``stoichgen train``).

Only the command line, ``paper`` and benchmarks import this module: using a run (sampling, predicting,
evaluating) goes through ``run.RunRecord`` and ``predict``.

>>> result = train("cgan", "bp", out="runs/cgan-bp", steps=2000)     # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from stoichgen.chem.composition import Vocabulary
from stoichgen.data import Dataset, DataSource, MinMaxNormaliser, Split, split_dataset
from stoichgen.errors import RunError, TrainError
from stoichgen.io import atomic_write_text
from stoichgen.models.fast.stepper import GANStepper
from stoichgen.models.fast.surrogate import SurrogateStepper
from stoichgen.options import (
    TrainOptions,
    build_model,
    make_options,
    resolve_device,
    resume_device,
    stored_options,
)
from stoichgen.run import CHECKPOINT, Progress, RunRecord

RUN_FILES = (CHECKPOINT, "config.json", "losses.jsonl")


@dataclass(frozen=True)
class TrainingData:
    """Tensors and normalisers for training, fixed by the data and the split."""

    x: torch.Tensor  # (N, D) normalised features of the train split
    y: torch.Tensor  # (N, 1) normalised property
    normaliser: MinMaxNormaliser
    property_normaliser: MinMaxNormaliser
    vocabulary: Vocabulary
    split: Split


def training_data(
    dataset: Dataset, representation: str, split_seed: int, train_max_property: float | None = None
) -> TrainingData:
    """Split ``dataset``, fit the normalisers on the training split and make its tensors."""
    split = split_dataset(dataset, split_seed, train_max_property)
    features = split.train.features(representation)  # (N, D)
    normaliser = MinMaxNormaliser.fit(features)
    property_normaliser = MinMaxNormaliser.fit(split.train.y[:, None])
    x = torch.tensor(normaliser.transform(features), dtype=torch.float32)
    y = torch.tensor(property_normaliser.transform(split.train.y[:, None]), dtype=torch.float32)
    return TrainingData(x, y, normaliser, property_normaliser, dataset.vocabulary, split)


# --- the run -------------------------------------------------------------------------------------------


@dataclass
class RunResult:
    run_dir: Path
    steps: int
    elapsed_s: float
    model: nn.Module
    last_losses: dict[str, float] = field(default_factory=dict)


class _Progress:
    """A tqdm bar on a terminal; plain periodic lines otherwise (logs, CI)."""

    def __init__(self, total: int | None, initial: int, enabled: bool) -> None:
        self.enabled = enabled
        self.bar = None
        self.last_print = time.monotonic()
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True)

    def update(self, step: int, n: int, losses: dict[str, float], elapsed: float, total: int | None) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(n)
            self.bar.set_postfix({k: f"{v:.3g}" for k, v in losses.items()}, refresh=False)
        elif time.monotonic() - self.last_print > 10:
            self.last_print = time.monotonic()
            rate = step / elapsed if elapsed > 0 else 0.0
            eta = f", eta {(total - step) / rate:.0f}s" if total and rate else ""
            text = " ".join(f"{k}={v:.4g}" for k, v in losses.items())
            print(
                f"step {step}{'/' + str(total) if total else ''} ({rate:.0f}/s{eta}) {text}", file=sys.stderr
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _claim_run_dir(out: Path, resume: bool, force: bool) -> bool:
    """Whether ``out`` may take a run (nothing is created or removed yet: ``_prepare_run_dir``); True when
    an existing run should be resumed.

    A directory holding only the files of a run that never saved a checkpoint (interrupted during its
    first minute) is started afresh without ``force``: nothing in it can be resumed or lost.
    """
    if out.exists() and not out.is_dir():
        raise TrainError(f"run directory {str(out)!r} exists and is not a directory")
    has_checkpoint = (out / CHECKPOINT).is_file()
    if resume:
        if not has_checkpoint:
            raise TrainError(
                f"nothing to resume in {str(out)!r}: it holds no checkpoint (training never saved one); "
                "start the run again without resume=True"
            )
        return True
    entries = {p.name for p in out.iterdir()} if out.is_dir() else set()
    if has_checkpoint and not force:
        raise TrainError(
            f"run directory {str(out)!r} holds a run; resume it (resume=True) or overwrite it (force=True)"
        )
    if entries - set(RUN_FILES) and not force:
        raise TrainError(
            f"run directory {str(out)!r} is not empty and holds files that are not a stoichgen run's "
            f"({', '.join(sorted(entries - set(RUN_FILES))[:5])}); choose another directory or overwrite "
            "it (force=True)"
        )
    return False


def _prepare_run_dir(out: Path) -> None:
    """Clear a fresh run's directory (only a run's own files: checked by ``_claim_run_dir``) and make it,
    once every refusal has passed: a refused request creates nothing."""
    for name in RUN_FILES:
        (out / name).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)


# the train() arguments a resumed run takes from its record, and whether they may differ there
_RESUMED_FIELDS = ("model", "representation", "preset", "seed", "split_seed")


def _resume_conflicts(
    record: RunRecord, stored: TrainOptions, asked: dict[str, Any], data: DataSource | None
) -> list[str]:
    """What a resume request asks for that the run was not trained with, one phrase each."""
    unknown = sorted(name for name in asked if not hasattr(stored, name))
    if unknown:
        raise TrainError(f"unknown training options {unknown}")
    conflicts = [
        f"{name} {value!r} (the run has {getattr(stored, name)!r})"
        for name, value in asked.items()
        if value is not None and value != getattr(stored, name)
    ]
    if data is not None and data != record.data:
        conflicts.append(f"data {data.describe()} (the run has {record.data.describe()})")
    return conflicts


def train(
    model: str,
    representation: str,
    out: Path | str,
    *,
    preset: str | None = None,
    data: DataSource | None = None,
    steps: int | None = None,
    minutes: float | None = None,
    seed: int | None = None,
    split_seed: int | None = None,
    device: str | None = None,
    compile: bool | None = None,
    resume: bool = False,
    force: bool = False,
    progress: bool = True,
    **overrides: Any,
) -> RunResult:
    """Train one model into the run directory ``out`` and return it.

    ``steps`` counts generator steps for the GAN (each with ``n_critic`` critic steps) and optimiser steps
    for the CondVAE and DNN. With ``resume=True`` the run continues from its last checkpoint, with the
    options stored in it, to the same weights an uninterrupted run would reach; asking a resumed run for
    another model, representation, preset, seed, split, data or hyper-parameter is refused (a new budget,
    ``steps`` or ``minutes``, is allowed). ``data`` defaults to the bundled MP set (``DataSource()``).
    """
    out = Path(out)
    resuming = _claim_run_dir(out, resume, force)
    record = RunRecord.load(out) if resuming else None
    if record is not None:
        options = stored_options(record)
        asked = {"model": model, "representation": representation, "preset": preset, "seed": seed,
                 "split_seed": split_seed, **overrides}  # fmt: skip
        conflicts = _resume_conflicts(record, options, asked, data)
        if conflicts:
            raise TrainError(
                f"cannot resume {str(out)!r} with other settings than it was trained with: "
                + "; ".join(conflicts)
            )
        if steps is not None or minutes is not None:  # a resumed run may be given a new budget
            options = replace(options, steps=steps, minutes=minutes)
        if device is not None or compile is not None:  # where and how it runs does not change the run
            options = replace(options, device=device or options.device,
                              compile=options.compile if compile is None else compile)  # fmt: skip
        data = record.data
    else:
        options = make_options(
            model, representation, preset or "default", steps=steps, minutes=minutes, seed=seed,
            split_seed=split_seed, device=device, compile=compile, **overrides,
        )  # fmt: skip
        data = data or DataSource()
    # a resumed run asked for no device continues where this machine can (resume_device)
    dev = (
        resume_device(options.device, str(out))
        if resuming and device is None
        else resolve_device(options.device)
    )
    dataset = data.load()
    tensors = training_data(dataset, options.representation, options.split_seed, options.train_max_property)
    if record is not None and record.vocabulary.symbols != tensors.vocabulary.symbols:
        raise TrainError(
            f"checkpoint in {str(out)!r} was trained on a different element vocabulary "
            f"({len(record.vocabulary)} elements) than the data ({len(tensors.vocabulary)} elements)"
        )
    if len(tensors.x) < options.batch_size:
        raise TrainError(
            f"the training split has {len(tensors.x)} rows, fewer than one batch of {options.batch_size}"
        )
    if record is None:
        _prepare_run_dir(out)
    torch.manual_seed(options.seed)
    net = build_model(options, tensors.x.shape[1])
    if record is not None:
        net.load_state_dict(dict(record.state_dict), strict=True)
    net.to(dev)
    if record is None:
        atomic_write_text(
            out / "config.json", json.dumps(_describe(options, data, tensors, net), indent=2) + "\n"
        )
    loop = {"cgan": _GANLoop, "surrogate": _SurrogateLoop}.get(options.model, _SimpleLoop)
    return loop(net, options, tensors, data, out, dev, record, progress).run()


def _describe(options: TrainOptions, data: DataSource, tensors: TrainingData, net: nn.Module) -> dict:
    return {
        "train": asdict(options),
        "data": asdict(data),
        "model_class": type(net).__name__,
        "model_config": asdict(net.config),
        "split": tensors.split.info,
        "n_train": len(tensors.split.train),
        "n_test": len(tensors.split.test),
        "n_elements": len(tensors.vocabulary),
        "x_dim": int(tensors.x.shape[1]),
    }


class _Loop:
    """What both loops share: budget, RNG, logging, periodic atomic checkpoints and resumption."""

    def __init__(self, net, options, tensors, data, out, device, record, progress) -> None:
        self.net, self.options, self.tensors, self.data = net, options, tensors, data
        self.out, self.device = out, device
        self.rng = torch.Generator().manual_seed(options.seed)
        self.step = 0
        self.elapsed_before = 0.0
        self.progress_enabled = progress
        self.resumed_from: RunRecord | None = record  # the run this one continues
        self.x = tensors.x.to(device)
        self.y = tensors.y.to(device)
        if record is not None:
            self.step = record.progress.step
            self.elapsed_before = record.progress.elapsed_s
            if record.rng is None:
                raise RunError(f"run {record.source} holds no random state to resume from")
            self.rng.set_state(record.rng)
        self.log_path = out / "losses.jsonl"
        self._trim_log()

    def _trim_log(self) -> None:
        """Drop log lines written after the checkpoint, so a resumed log equals an uninterrupted one; a
        torn last line (a power cut mid-write) is dropped too."""
        if not self.log_path.exists():
            return
        kept = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(entry, dict) and isinstance(entry.get("step"), int) and entry["step"] <= self.step:
                kept.append(line)
        atomic_write_text(self.log_path, "".join(line + "\n" for line in kept))

    def batch_indices(self, *shape: int) -> torch.Tensor:
        return torch.randint(0, len(self.x), shape, generator=self.rng).to(self.device)

    def uniform(self, *shape: int) -> torch.Tensor:
        return torch.rand(shape, generator=self.rng).to(self.device)

    def normal(self, *shape: int) -> torch.Tensor:
        return torch.randn(shape, generator=self.rng).to(self.device)

    # steps taken at once by train_steps (a CUDA graph's); 1: train_step, one by one
    chunk = 1

    def train_step(self) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def train_steps(self, n: int) -> dict[str, torch.Tensor]:
        """``n`` steps; each logged term as (n,)."""
        raise NotImplementedError

    def optimizer_state(self) -> dict:
        raise NotImplementedError

    def sync_to_model(self) -> None:
        """Make ``self.net`` hold the current weights."""

    def checkpoint(self, elapsed: float) -> None:
        self.sync_to_model()
        t = self.tensors
        RunRecord.from_model(
            self.net,
            normaliser=t.normaliser,
            property_normaliser=t.property_normaliser,
            property_name=t.split.train.property_name,
            vocabulary=t.vocabulary,
            representation=self.options.representation,
            split=dict(t.split.info),
            data=self.data,
            train=asdict(self.options),
            progress=Progress(self.step, elapsed),
            optimizer=self.optimizer_state(),
            rng=self.rng.get_state(),
        ).save(self.out)

    def run(self) -> RunResult:
        o = self.options
        total = o.steps
        budget_s = o.minutes * 60 if o.minutes is not None else math.inf
        start = time.monotonic()
        last_checkpoint = start
        bar = _Progress(total, self.step, self.progress_enabled)
        logs: dict[str, float] = {}
        pending: list[dict[str, torch.Tensor]] = []
        with self.log_path.open("a") as log:
            while (
                total is None or self.step < total
            ) and self.elapsed_before + time.monotonic() - start < budget_s:
                n = min(self.chunk, o.log_every - self.step % o.log_every, (total or math.inf) - self.step)
                pending.append(self.train_step() if n == 1 else self.train_steps(n))
                self.step += n
                if self.step % o.log_every == 0 or self.step == total:
                    # one sync per log line: reading a loss forces the device to finish
                    logs = {k: float(torch.cat([p[k].view(-1) for p in pending]).mean()) for k in pending[0]}
                    pending.clear()
                    elapsed = self.elapsed_before + time.monotonic() - start
                    log.write(json.dumps({"step": self.step, "elapsed_s": round(elapsed, 3), **logs}) + "\n")
                    log.flush()
                    bar.update(self.step, o.log_every, logs, elapsed, total)
                    if time.monotonic() - last_checkpoint > o.checkpoint_every_s:
                        self.checkpoint(elapsed)
                        last_checkpoint = time.monotonic()
        bar.close()
        elapsed = self.elapsed_before + time.monotonic() - start
        self.checkpoint(elapsed)
        return RunResult(self.out, self.step, elapsed, self.net.cpu().eval(), logs)


class _GANLoop(_Loop):
    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.stepper = GANStepper(self.net, self.options, self.device)
        if self.resumed_from is not None:
            self.stepper.load(dict(self.resumed_from.state_dict), self.resumed_from.optimizer, self.device)
        self.chunk = self.stepper.graph_steps(self.options.log_every)

    def draws(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One generator step's random draws, on the CPU, in the run's order."""
        c, b, z_dim = self.options.n_critic, self.options.batch_size, self.net.config.z_dim
        idx = torch.randint(0, len(self.x), (c, b), generator=self.rng).view(-1)  # (C * B,)
        z = torch.rand((c + 1, b, z_dim), generator=self.rng) * 2 - 1  # (C + 1, B, Z) ~ U(-1, 1)
        eps = torch.rand((c, b, 1), generator=self.rng)  # (C, B, 1) ~ U[0, 1]
        return idx, z, eps

    def train_step(self) -> dict[str, torch.Tensor]:
        idx, z, eps = (t.to(self.device) for t in self.draws())
        return self.stepper.step(self.x, self.y, idx, z, eps, self.step)

    def train_steps(self, n: int) -> dict[str, torch.Tensor]:
        # the draws of n steps cross to the device in one copy each, not three per step
        draws = [self.draws() for _ in range(n)]
        idx, z, eps = (torch.stack(t).to(self.device) for t in zip(*draws, strict=True))  # (S, ...) each
        return self.stepper.steps(self.x, self.y, idx, z, eps, self.step)

    def optimizer_state(self) -> dict:
        return self.stepper.optimizer_state()

    def sync_to_model(self) -> None:
        self.stepper.sync_to_model()


class _SimpleLoop(_Loop):
    """CondVAE and DNN: a plain loop with ``torch.optim.Adam``."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=self.options.lr, betas=self.options.betas)
        if self.resumed_from is not None:
            self.optimizer.load_state_dict(self.resumed_from.optimizer)

    def batch_loss(self) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The loss (and its logged terms) of the next batch drawn from the run's RNG."""
        idx = self.batch_indices(self.options.batch_size)  # (B,)
        x, y = self.x[idx], self.y[idx]  # (B, D), (B, 1)
        if self.options.model == "cvae":  # the VAE's loss takes the reparameterisation noise
            warmup = self.options.kl_warmup_steps  # and the KL warm-up's ramp, 0 -> 1
            ramp = min(1.0, self.step / warmup) if warmup else 1.0
            return self.net.loss(x, y, self.normal(len(idx), self.net.config.z_dim), kl_weight=ramp)
        return self.net.loss(x, y)

    def train_step(self) -> dict[str, torch.Tensor]:
        loss, logs = self.batch_loss()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return {"loss": loss.detach(), **{k: v.detach() for k, v in logs.items()}}

    def optimizer_state(self) -> dict:
        return self.optimizer.state_dict()


class _SurrogateLoop(_Loop):
    """The surrogate: each member trains on its own bootstrap resample of the training split, less a
    calibration share no member sees, on which the spread is scaled at every checkpoint. All members
    take their step at once (``fast.surrogate.SurrogateStepper``)."""

    CALIBRATION_SHARE = 0.05

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        # drawn from their own generator, so a resumed run draws the same resamples
        draws = torch.Generator().manual_seed(self.options.seed + 1)
        order = torch.randperm(len(self.x), generator=draws)
        n_calibration = max(1, int(len(order) * self.CALIBRATION_SHARE))
        self.calibration, fit = order[:n_calibration], order[n_calibration:]
        k = self.net.config.members
        self.bootstrap = fit[torch.randint(0, len(fit), (k, len(fit)), generator=draws)].to(self.device)
        self.stepper = SurrogateStepper(self.net, self.options, self.device)
        if self.resumed_from is not None:
            self.stepper.load(self.resumed_from.optimizer, self.device)
        self.chunk = self.stepper.graph_steps(self.options.log_every)

    def picks(self) -> torch.Tensor:
        """One step's draw, on the CPU: each member's batch as positions in its resample. (K, B)"""
        k, b = self.bootstrap.shape[0], self.options.batch_size
        return torch.randint(0, self.bootstrap.shape[1], (k, b), generator=self.rng)

    def train_step(self) -> dict[str, torch.Tensor]:
        rows = self.bootstrap.gather(1, self.picks().to(self.device))  # (K, B): each member's own batch
        return self.stepper.step(self.x, self.y, rows, self.step)

    def train_steps(self, n: int) -> dict[str, torch.Tensor]:
        picks = torch.stack([self.picks() for _ in range(n)]).to(self.device)  # (S, K, B), one copy
        rows = torch.stack([self.bootstrap.gather(1, p) for p in picks])  # (S, K, B)
        return self.stepper.steps(self.x, self.y, rows, self.step)

    def optimizer_state(self) -> dict:
        return self.stepper.optimizer_state(self.step)

    def sync_to_model(self) -> None:
        self.stepper.sync_to_model()
        self.calibrate()

    def calibrate(self) -> None:
        """Scale the spread so that 68.3 % of the calibration rows' errors lie within one spread."""
        with torch.no_grad():
            self.net.spread_scale.fill_(1.0)
            rows = self.calibration.to(self.device)
            mean, spread = self.net.predict_with_spread(self.x[rows])  # (C, 1), (C, 1)
            ratio = (mean - self.y[rows]).abs() / spread.clamp_min(1e-12)  # (C, 1)
            self.net.spread_scale.fill_(float(torch.quantile(ratio, 0.683)))
