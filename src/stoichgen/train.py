"""Training runs: data preparation, the training loops, checkpoints, resumption.

A run directory holds ``checkpoint.pt`` (everything needed to sample or resume; loadable with
``torch.load(..., weights_only=True)``), ``config.json`` and ``losses.jsonl``.

>>> run = train("cgan", "bp", out="runs/cgan-bp", steps=2000)     # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn
from torch.func import functional_call, grad

from stoichgen.composition import Vocabulary
from stoichgen.data import (
    PAPER_N_TEST,
    DataError,
    Dataset,
    MinMaxNormaliser,
    Split,
    load_csv,
    load_mp_formation_energy,
)
from stoichgen.models import (
    DNN,
    MODEL_CLASSES,
    CondGAN,
    CondGANConfig,
    CondVAE,
    CondVAEConfig,
    DNNConfig,
)

FORMAT_VERSION = 1
CHECKPOINT = "checkpoint.pt"
MODEL_NAMES = {"cgan": "CondGAN", "cvae": "CondVAE", "dnn": "DNN"}
ModelName = Literal["cgan", "cvae", "dnn"]


class TrainError(ValueError):
    """A training request or a checkpoint that cannot be used."""


@dataclass(frozen=True)
class TrainOptions:
    """How to train. ``preset="paper"`` is the paper's / authors' settings; ``"default"`` is tuned to reach
    the paper's quality on a 2-core CPU in minutes (see README: what differs and why)."""

    model: ModelName
    representation: Literal["b", "bp"]
    preset: Literal["default", "paper"] = "default"
    steps: int | None = None  # generator steps for the GAN, optimiser steps otherwise
    minutes: float | None = None
    batch_size: int = 256
    lr: float = 1e-4
    betas: tuple[float, float] = (0.0, 0.9)
    n_critic: int = 5
    hidden: tuple[int, ...] | None = None  # generator / decoder hidden sizes; critic reversed
    lambda_fake_property: float = 1.0  # CondGAN lambda_2
    lambda_real_property: float = 1.0  # CondGAN lambda_3
    lr_final_fraction: float = 1.0  # CondGAN: lr decays linearly to this fraction ...
    lr_decay_steps: int | None = None  # ... over this many steps (default: the step budget)
    generator_ema: float = 0.0  # CondGAN: decay of an exponential moving average of the generator's
    # weights (warmed up: GANStepper.ema_decay), which is what the run saves for sampling (0: off)
    seed: int = 0
    split_seed: int = 0
    train_max_property: float | None = None  # extrapolation split: train on property <= this (Fig. 1B)
    checkpoint_every_s: float = 60.0
    log_every: int = 100
    compile: bool = True
    device: str = "auto"


PRESETS: dict[tuple[str, str], dict[str, Any]] = {
    # the paper / authors' code
    ("cgan", "paper"): {"lr": 1e-4, "betas": (0.0, 0.9), "n_critic": 5, "steps": 8_600_000},
    ("cvae", "paper"): {"lr": 1e-3, "betas": (0.9, 0.999), "steps": 8_600_000},
    ("dnn", "paper"): {"lr": 1e-3, "betas": (0.9, 0.999), "steps": 8_600_000},
    # tuned for a CPU budget
    ("cgan", "default"): {
        "lr": 1e-3,
        "betas": (0.0, 0.9),
        "n_critic": 1,
        "steps": 160_000,
        "hidden": (120, 240),
        "lambda_fake_property": 10.0,
        "lambda_real_property": 10.0,
        "generator_ema": 0.999,
    },
    ("cvae", "default"): {"lr": 1e-3, "betas": (0.9, 0.999), "steps": 30_000},
    ("dnn", "default"): {"lr": 1e-3, "betas": (0.9, 0.999), "steps": 30_000},
}


# Where a preset differs by representation. CondGAN(x^b): the x^bp tuning (1 critic step, weight average)
# collapses x^b samples to a single element after thresholding (MAE 2.00 against 0.43 for split 0), so
# x^b keeps the previous default: width 60 -> 120, 5 critic steps, raw weights, 90,000 steps.
REPRESENTATION_PRESETS: dict[tuple[str, str, str], dict[str, Any]] = {
    ("cgan", "default", "b"): {"n_critic": 5, "steps": 90_000, "hidden": (60, 120), "generator_ema": 0.0},
}


def make_options(model: str, representation: str, preset: str = "default", **overrides: Any) -> TrainOptions:
    """Options from a preset, with explicit (non-None) overrides on top."""
    if model not in MODEL_NAMES:
        raise TrainError(f"unknown model {model!r}; expected one of {sorted(MODEL_NAMES)}")
    if representation not in ("b", "bp"):
        raise TrainError(f"unknown representation {representation!r}; expected 'b' or 'bp'")
    if preset not in ("default", "paper"):
        raise TrainError(f"unknown preset {preset!r}; expected 'default' or 'paper'")
    values = dict(PRESETS[(model, preset)]) | REPRESENTATION_PRESETS.get((model, preset, representation), {})
    given = {k: v for k, v in overrides.items() if v is not None}
    if "minutes" in given and "steps" not in given:
        values.pop("steps")
    values.update(given)
    if values.get("lr_decay_steps") is None:
        values["lr_decay_steps"] = values.get("steps")
    options = TrainOptions(model=model, representation=representation, preset=preset, **values)
    if options.steps is not None and options.steps <= 0:
        raise TrainError(f"--steps must be positive, got {options.steps}")
    if options.minutes is not None and options.minutes <= 0:
        raise TrainError(f"--minutes must be positive, got {options.minutes}")
    return options


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise TrainError("--device cuda was asked for but no CUDA device is available")
    if device not in ("cpu", "cuda"):
        raise TrainError(f"unknown device {device!r}; expected auto, cpu or cuda")
    return torch.device(device)


@dataclass(frozen=True)
class DataSource:
    """Where the training data came from, so a run can be resumed or evaluated on the same data."""

    csv: str | None = None
    composition_column: str = "composition"
    property_column: str = "property"

    def load(self, vocabulary: Vocabulary | None = None) -> Dataset:
        if self.csv is None:
            return load_mp_formation_energy()
        return load_csv(self.csv, self.composition_column, self.property_column, vocabulary=vocabulary)


def split_dataset(dataset: Dataset, split_seed: int, train_max_property: float | None = None) -> Split:
    """The paper's random split for the MP set (5,506 test); the same test share for other data.

    With ``train_max_property`` the split is by range instead (paper Fig. 1B): train on y <= it.
    """
    if train_max_property is not None:
        try:
            return dataset.range_split(train_max_property)
        except DataError as err:
            raise TrainError(f"--train-max-property {train_max_property:g}: {err}") from None
    n_test = PAPER_N_TEST if len(dataset) > 2 * PAPER_N_TEST else max(1, round(len(dataset) * 5506 / 49546))
    return dataset.random_split(split_seed, n_test)


def run_split(dataset: Dataset, info: dict) -> Split:
    """The split a run was trained on, from its checkpoint's description (``payload["split"]``)."""
    if info.get("kind") == "range":
        return dataset.range_split(info["y_max"])
    if "n_test" in info:
        return dataset.random_split(info["seed"], info["n_test"])
    return split_dataset(dataset, info["seed"])


@dataclass
class Prepared:
    """Tensors and normalisers for training, fixed by the data and the split."""

    x: torch.Tensor  # (N, D) normalised features of the train split
    y: torch.Tensor  # (N, 1) normalised property
    normaliser: MinMaxNormaliser
    property_normaliser: MinMaxNormaliser
    vocabulary: Vocabulary
    split: Split


def prepare(
    dataset: Dataset, representation: str, split_seed: int, train_max_property: float | None = None
) -> Prepared:
    split = split_dataset(dataset, split_seed, train_max_property)
    features = split.train.features(representation)  # (N, D)
    normaliser = MinMaxNormaliser.fit(features)
    property_normaliser = MinMaxNormaliser.fit(split.train.y[:, None])
    x = torch.tensor(normaliser.transform(features), dtype=torch.float32)
    y = torch.tensor(property_normaliser.transform(split.train.y[:, None]), dtype=torch.float32)
    return Prepared(x, y, normaliser, property_normaliser, dataset.vocabulary, split)


def build_model(options: TrainOptions, x_dim: int) -> nn.Module:
    hidden = options.hidden
    if options.model == "cgan":
        config = CondGANConfig(
            x_dim=x_dim,
            lambda_fake_property=options.lambda_fake_property,
            lambda_real_property=options.lambda_real_property,
        )
        if hidden:
            config = replace(config, generator_hidden=hidden, critic_hidden=tuple(reversed(hidden)))
        return CondGAN(config)
    if options.model == "cvae":
        config = CondVAEConfig(x_dim=x_dim)
        if hidden:
            config = replace(config, decoder_hidden=hidden, encoder_hidden=tuple(reversed(hidden)))
        return CondVAE(config)
    config = DNNConfig(x_dim=x_dim)
    if hidden:
        config = replace(config, hidden=tuple(reversed(hidden)))
    return DNN(config)


# --- the GAN step: 5 critic steps and one generator step as one pure function ----------------------------


class _Objective(nn.Module):
    """Calls one of the GAN's methods, so ``torch.func`` can differentiate it in given weights."""

    def __init__(self, gan: CondGAN, method: str) -> None:
        super().__init__()
        self.gan = gan
        self.method = method

    def forward(self, *tensors: torch.Tensor) -> Any:
        return getattr(self.gan, self.method)(*tensors)


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
    """One step of Adam (as ``torch.optim.Adam``), functional; ``t`` is the 1-based step number."""
    b1, b2 = betas
    m = b1 * m + (1 - b1) * grad
    v = b2 * v + (1 - b2) * grad * grad
    m_hat = m / (1 - b1**t)
    v_hat = v / (1 - b2**t)
    return param - lr * m_hat / (v_hat.sqrt() + eps), m, v


class GANStepper:
    """Runs the authors' update (n_critic critic steps, then one generator step) as one pure function of
    the weights, so that ``torch.compile`` can fuse it into a few kernels: the Python overhead of many
    tiny layers, not arithmetic, bounds an eager loop on a CPU.

    Weights and Adam moments live in flat vectors (``_Flat``). The generator is fixed during the critic
    steps, so the fakes of all of them are drawn in one batched forward pass. On a multi-core CPU each
    batch is cut into two shards, one per core (``models.affine``); the losses are the same.
    """

    def __init__(self, gan: CondGAN, options: TrainOptions, device: torch.device) -> None:
        self.gan = gan
        self.options = options
        self.critic_objective = _Objective(gan, "critic_gradients")
        self.generator_objective = _Objective(gan, "generator_loss")
        self.generate_objective = _Objective(gan, "generate")
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
        if options.compile:
            self.step_fn = torch.compile(self._step, options={"cpp_wrapper": device.type == "cpu"})

    def _critic_gradients(self, critic, real, fake, y, eps):
        """The critic loss's gradient as a flat vector (``CondGAN.critic_gradients``) and its terms."""
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


def gan_batch(
    x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor, n_critic: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows ``idx`` (C * B,) of the training tensors as the stepper takes them: real (C, B, D) and
    y (C + 1, B, 1), the generator step conditioning on the last critic batch's properties, as in the
    authors' code."""
    real = x.index_select(0, idx).view(n_critic, -1, x.shape[1])  # (C, B, D)
    prop = y.index_select(0, idx).view(n_critic, -1, 1)  # (C, B, 1)
    return real, torch.cat([prop, prop[-1:]])  # (C, B, D), (C + 1, B, 1)


# --- checkpoints ---------------------------------------------------------------------------------------


_UMASK = os.umask(0)
os.umask(_UMASK)


def _atomic_write_bytes(path: Path, write: Callable[[Any], None]) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    _atomic_write_bytes(path, lambda handle: handle.write(text.encode()))


def save_checkpoint(path: Path, payload: dict) -> None:
    _atomic_write_bytes(path, lambda handle: torch.save(payload, handle))


def load_checkpoint(path: Path | str) -> dict:
    """Read and validate a checkpoint file (``weights_only=True``: no code runs on load)."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT
    if not path.is_file():
        raise TrainError(f"no checkpoint at {str(path)!r}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a damaged file
        raise TrainError(
            f"checkpoint {str(path)!r} is corrupt or not a stoichgen checkpoint: {err}"
        ) from None
    if not isinstance(payload, dict) or "format_version" not in payload:
        raise TrainError(f"checkpoint {str(path)!r} is not a stoichgen checkpoint")
    if payload["format_version"] != FORMAT_VERSION:
        raise TrainError(
            f"checkpoint {str(path)!r} has format version {payload['format_version']}; "
            f"this stoichgen reads version {FORMAT_VERSION}"
        )
    if payload.get("model_class") not in MODEL_CLASSES:
        raise TrainError(f"checkpoint {str(path)!r} has unknown model class {payload.get('model_class')!r}")
    return payload


def stored_options(payload: dict) -> TrainOptions:
    """The ``TrainOptions`` a checkpoint was trained with. Fields added since then take their defaults,
    which is what they were before they existed."""
    stored = dict(payload["train"])
    stored["betas"] = tuple(stored["betas"])  # JSON-like storage turns tuples into lists
    stored["hidden"] = tuple(stored["hidden"]) if stored["hidden"] else None
    return TrainOptions(**stored)


def model_from_checkpoint(payload: dict) -> nn.Module:
    model_class, config_class = MODEL_CLASSES[payload["model_class"]]
    config = config_class(
        **{k: tuple(v) if isinstance(v, list) else v for k, v in payload["model_config"].items()}
    )
    model = model_class(config)
    model.load_state_dict(payload["state_dict"], strict=True)
    return model.eval()


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


def _prepare_run_dir(out: Path, resume: bool, force: bool) -> bool:
    """Returns True when an existing run should be resumed."""
    if out.exists() and not out.is_dir():
        raise TrainError(f"run directory {str(out)!r} exists and is not a directory")
    existing = out.is_dir() and any(out.iterdir())
    if resume:
        if not (out / CHECKPOINT).is_file():
            raise TrainError(f"--resume: no checkpoint in {str(out)!r}")
        return True
    if existing and not force:
        raise TrainError(f"run directory {str(out)!r} is not empty; pass --resume to continue it or --force")
    if existing and force:
        for name in (CHECKPOINT, "config.json", "losses.jsonl"):
            (out / name).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    return False


def train(
    model: str,
    representation: str,
    out: Path | str,
    *,
    preset: str = "default",
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
    options stored in it, to the same weights an uninterrupted run would reach.
    """
    out = Path(out)
    resuming = _prepare_run_dir(out, resume, force)
    payload = load_checkpoint(out / CHECKPOINT) if resuming else None
    if payload is not None:
        options = stored_options(payload)
        if steps is not None or minutes is not None:  # a resumed run may be given a new budget
            options = replace(options, steps=steps, minutes=minutes)
        data = DataSource(**payload["data"])
    else:
        options = make_options(
            model, representation, preset, steps=steps, minutes=minutes, seed=seed, split_seed=split_seed,
            device=device, compile=compile, **overrides,
        )  # fmt: skip
        data = data or DataSource()
    dev = resolve_device(options.device)
    dataset = data.load()
    prepared = prepare(dataset, options.representation, options.split_seed, options.train_max_property)
    if payload is not None and tuple(payload["vocabulary"]) != prepared.vocabulary.symbols:
        raise TrainError(
            f"checkpoint in {str(out)!r} was trained on a different element vocabulary "
            f"({len(payload['vocabulary'])} elements) than the data ({len(prepared.vocabulary)} elements)"
        )
    if len(prepared.x) < options.batch_size:
        raise TrainError(
            f"the training split has {len(prepared.x)} rows, fewer than one batch of {options.batch_size}"
        )
    torch.manual_seed(options.seed)
    net = build_model(options, prepared.x.shape[1])
    if payload is not None:
        net.load_state_dict(payload["state_dict"], strict=True)
    net.to(dev)
    if payload is None:
        atomic_write_text(
            out / "config.json", json.dumps(_describe(options, data, prepared, net), indent=2) + "\n"
        )
    loop = _GANLoop if options.model == "cgan" else _SimpleLoop
    return loop(net, options, prepared, data, out, dev, payload, progress).run()


def _describe(options: TrainOptions, data: DataSource, prepared: Prepared, net: nn.Module) -> dict:
    return {
        "train": asdict(options),
        "data": asdict(data),
        "model_class": type(net).__name__,
        "model_config": asdict(net.config),
        "split": prepared.split.info,
        "n_train": len(prepared.split.train),
        "n_test": len(prepared.split.test),
        "n_elements": len(prepared.vocabulary),
        "x_dim": int(prepared.x.shape[1]),
    }


class _Loop:
    """What both loops share: budget, RNG, logging, periodic atomic checkpoints and resumption."""

    def __init__(self, net, options, prepared, data, out, device, payload, progress) -> None:
        self.net, self.options, self.prepared, self.data = net, options, prepared, data
        self.out, self.device = out, device
        self.rng = torch.Generator().manual_seed(options.seed)
        self.step = 0
        self.elapsed_before = 0.0
        self.progress_enabled = progress
        self.resumed_from = payload  # the checkpoint this run continues, or None
        self.x = prepared.x.to(device)
        self.y = prepared.y.to(device)
        if payload is not None:
            self.step = payload["progress"]["step"]
            self.elapsed_before = payload["progress"]["elapsed_s"]
            self.rng.set_state(payload["rng"])
        self.log_path = out / "losses.jsonl"
        self._trim_log()

    def _trim_log(self) -> None:
        """Drop log lines written after the checkpoint, so a resumed log equals an uninterrupted one."""
        if not self.log_path.exists():
            return
        kept = [
            line
            for line in self.log_path.read_text().splitlines()
            if line.strip() and json.loads(line)["step"] <= self.step
        ]
        atomic_write_text(self.log_path, "".join(line + "\n" for line in kept))

    def batch_indices(self, *shape: int) -> torch.Tensor:
        return torch.randint(0, len(self.x), shape, generator=self.rng).to(self.device)

    def uniform(self, *shape: int) -> torch.Tensor:
        return torch.rand(shape, generator=self.rng).to(self.device)

    def normal(self, *shape: int) -> torch.Tensor:
        return torch.randn(shape, generator=self.rng).to(self.device)

    def train_step(self) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def optimizer_state(self) -> dict:
        raise NotImplementedError

    def sync_to_model(self) -> None:
        """Make ``self.net`` hold the current weights."""

    def checkpoint(self, elapsed: float) -> None:
        self.sync_to_model()
        p = self.prepared
        payload = {
            "format_version": FORMAT_VERSION,
            "model_class": type(self.net).__name__,
            "model_config": asdict(self.net.config),
            "state_dict": {k: v.detach().cpu() for k, v in self.net.state_dict().items()},
            "normaliser": p.normaliser.state_dict(),
            "property_normaliser": p.property_normaliser.state_dict(),
            "property_name": p.split.train.property_name,
            "vocabulary": list(p.vocabulary.symbols),
            "representation": self.options.representation,
            "split": dict(p.split.info),
            "data": asdict(self.data),
            "train": asdict(self.options),
            "progress": {"step": self.step, "elapsed_s": elapsed},
            "optimizer": self.optimizer_state(),
            "rng": self.rng.get_state(),
        }
        save_checkpoint(self.out / CHECKPOINT, payload)

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
                pending.append(self.train_step())
                self.step += 1
                if self.step % o.log_every == 0 or self.step == total:
                    # one sync per log line: reading a loss forces the device to finish
                    logs = {k: float(torch.stack([p[k] for p in pending]).mean()) for k in pending[0]}
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
            self.stepper.load(self.resumed_from["state_dict"], self.resumed_from["optimizer"], self.device)

    def train_step(self) -> dict[str, torch.Tensor]:
        c, b, z_dim = self.options.n_critic, self.options.batch_size, self.net.config.z_dim
        idx = self.batch_indices(c, b).view(-1)  # (C * B,)
        z = self.uniform(c + 1, b, z_dim) * 2 - 1  # (C + 1, B, Z) ~ U(-1, 1)
        eps = self.uniform(c, b, 1)  # (C, B, 1) ~ U[0, 1]
        return self.stepper.step(self.x, self.y, idx, z, eps, self.step)

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
            self.optimizer.load_state_dict(self.resumed_from["optimizer"])

    def train_step(self) -> dict[str, torch.Tensor]:
        idx = self.batch_indices(self.options.batch_size)  # (B,)
        x, y = self.x[idx], self.y[idx]  # (B, D), (B, 1)
        if isinstance(self.net, CondVAE):
            loss, logs = self.net.loss(x, y, self.normal(len(idx), self.net.config.z_dim))
        else:
            loss, logs = self.net.loss(x, y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return {"loss": loss.detach(), **{k: v.detach() for k, v in logs.items()}}

    def optimizer_state(self) -> dict:
        return self.optimizer.state_dict()
