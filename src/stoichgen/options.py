"""How to train: the options of a run, the presets they start from, and the model they build.

``preset="paper"`` is the paper's / authors' settings; ``"default"`` is tuned to reach the paper's
quality on a 2-core CPU in minutes (README: what differs and why).

>>> options = make_options("cgan", "bp")
>>> options.n_critic, options.steps, options.generator_ema
(1, 160000, 0.999)
>>> make_options("cgan", "bp", steps=0)
Traceback (most recent call last):
...
stoichgen.errors.InputError: steps must be an integer between 1 and 1000000000000, got 0
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, replace
from typing import Any, Literal

import torch
from torch import nn

from stoichgen.data import PAPER_N_ROWS, PAPER_N_TEST, element_descriptors
from stoichgen.errors import SEED_MAX, InputError, TrainError, check_int, check_number
from stoichgen.models import (
    DNN,
    MODEL_KINDS,
    CondGAN,
    CondGANConfig,
    CondVAE,
    CondVAEConfig,
    DNNConfig,
    SurrogateConfig,
    SurrogateEnsemble,
)
from stoichgen.models.cvae import LIKELIHOODS
from stoichgen.run import RunRecord

ModelName = Literal["cgan", "cvae", "dnn", "surrogate"]
PRESET_NAMES = ("default", "paper")
MAX_STEPS = 10**12
# The paper's budget: 50,000 epochs of the 44,040-row training split in whole batches of 256 (authors' code).
PAPER_EPOCHS = 50_000
PAPER_BATCH_SIZE = 256
PAPER_GENERATOR_STEPS = PAPER_EPOCHS * ((PAPER_N_ROWS - PAPER_N_TEST) // PAPER_BATCH_SIZE)


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
    likelihood: str = "bernoulli"  # CondVAE: p(x | z, y), models.cvae.LIKELIHOODS
    kl_weight: float = 1.0  # CondVAE: weight of the KL term (1: the ELBO of eq. 1)
    free_bits: float = 0.0  # CondVAE: nats per latent unit the KL term does not penalise (0: off)
    kl_warmup_steps: int = 0  # CondVAE: the KL weight ramps linearly from 0 over these steps (0: off)
    latent_dim: int = 10  # CondVAE: size of z (the paper: 10)
    adversary: float = 0.0  # CondVAE: weight of an adversary keeping z independent of y (0: off)
    conditional_prior: bool = False  # CondVAE: learn p(z | y) instead of the paper's N(0, I)
    property_weight: float = 0.0  # CondVAE: weight of the property loss on prior samples (0: off)
    members: int = 5  # surrogate: ensemble members, each on its own bootstrap resample
    seed: int = 0
    split_seed: int = 0
    train_max_property: float | None = None  # extrapolation split: train on property <= this (Fig. 1B)
    checkpoint_every_s: float = 60.0
    log_every: int = 100
    compile: bool = True
    device: str = "auto"


PRESETS: dict[tuple[str, str], dict[str, Any]] = {
    # the paper / authors' code
    ("cgan", "paper"): {"lr": 1e-4, "betas": (0.0, 0.9), "n_critic": 5, "steps": PAPER_GENERATOR_STEPS},
    ("cvae", "paper"): {"lr": 1e-3, "betas": (0.9, 0.999), "steps": PAPER_GENERATOR_STEPS},
    ("dnn", "paper"): {"lr": 1e-3, "betas": (0.9, 0.999), "steps": PAPER_GENERATOR_STEPS},
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
    # CondVAE: a softmax over the elements, z kept independent of y by an adversary and prior samples held
    # to their target by a property loss (docs/reproduction/cvae.md: the Bernoulli ELBO collapses)
    ("cvae", "default"): {
        "lr": 1e-3,
        "betas": (0.9, 0.999),
        "steps": 30_000,
        "likelihood": "softmax",
        "adversary": 100.0,
        "property_weight": 100.0,
    },
    ("dnn", "default"): {"lr": 1e-3, "betas": (0.9, 0.999), "steps": 30_000},
    # beyond the paper (no paper preset of its own): K bootstrap members of a wider DNN
    ("surrogate", "default"): {"lr": 1e-3, "betas": (0.9, 0.999), "steps": 30_000, "hidden": (128, 64)},
    ("surrogate", "paper"): {"lr": 1e-3, "betas": (0.9, 0.999), "steps": 30_000, "hidden": (128, 64)},
}


# Where a preset differs by representation. CondGAN(x^b): the x^bp tuning (1 critic step, weight average)
# collapses x^b samples to a single element after thresholding (MAE 2.00 against 0.43 for split 0), so
# x^b keeps the previous default: width 60 -> 120, 5 critic steps, raw weights, 90,000 steps.
REPRESENTATION_PRESETS: dict[tuple[str, str, str], dict[str, Any]] = {
    ("cgan", "default", "b"): {"n_critic": 5, "steps": 90_000, "hidden": (60, 120), "generator_ema": 0.0},
}


def make_options(model: str, representation: str, preset: str = "default", **overrides: Any) -> TrainOptions:
    """Options from a preset, with explicit (non-None) overrides on top."""
    if model not in MODEL_KINDS:
        raise TrainError(f"unknown model {model!r}; expected one of {sorted(MODEL_KINDS)}")
    if representation not in ("b", "bp"):
        raise TrainError(f"unknown representation {representation!r}; expected 'b' or 'bp'")
    if preset not in PRESET_NAMES:
        raise TrainError(f"unknown preset {preset!r}; expected one of {', '.join(PRESET_NAMES)}")
    known = {f.name for f in dataclasses.fields(TrainOptions)} - {"model", "representation", "preset"}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise TrainError(f"unknown training options {unknown}")
    values = dict(PRESETS[(model, preset)]) | REPRESENTATION_PRESETS.get((model, preset, representation), {})
    given = {k: v for k, v in overrides.items() if v is not None}
    if "minutes" in given and "steps" not in given:
        values.pop("steps")
    values.update(given)
    if values.get("lr_decay_steps") is None:
        values["lr_decay_steps"] = values.get("steps")
    options = TrainOptions(model=model, representation=representation, preset=preset, **values)
    check_options(options)
    return options


def check_options(options: TrainOptions) -> None:
    """Refuse options out of range, naming the option and the value."""
    if options.steps is not None:
        check_int(options.steps, "steps", 1, MAX_STEPS)
    if options.minutes is not None and not check_number(options.minutes, "minutes") > 0:
        raise InputError(f"minutes must be positive, got {options.minutes!r}")
    check_int(options.seed, "seed", 0, SEED_MAX)
    check_int(options.split_seed, "split_seed", 0, SEED_MAX)
    check_int(options.batch_size, "batch_size", 1, 1 << 20)
    check_int(options.n_critic, "n_critic", 1, 1000)
    check_int(options.members, "members", 2, 64)
    if options.train_max_property is not None:
        check_number(options.train_max_property, "train_max_property")
    if options.likelihood not in LIKELIHOODS:
        raise InputError(f"likelihood must be one of {', '.join(LIKELIHOODS)}, got {options.likelihood!r}")
    for name in ("kl_weight", "free_bits", "adversary", "property_weight"):
        if not check_number(getattr(options, name), name) >= 0:
            raise InputError(f"{name} must be >= 0, got {getattr(options, name)!r}")
    check_int(options.kl_warmup_steps, "kl_warmup_steps", 0, MAX_STEPS)
    check_int(options.latent_dim, "latent_dim", 1, 4096)


def stored_options(record: RunRecord) -> TrainOptions:
    """The ``TrainOptions`` a run was trained with. Fields added since then take their defaults, which is
    what they were before they existed."""
    stored = dict(record.train)
    stored["betas"] = tuple(stored["betas"])  # JSON-like storage turns tuples into lists
    stored["hidden"] = tuple(stored["hidden"]) if stored.get("hidden") else None
    return TrainOptions(**stored)


def resume_device(device: str, source: str) -> torch.device:
    """Where a resumed run continues when no device is asked for: the device it trained on if this
    machine has it, else the CPU, saying so on stderr (a run's device is where it trained, not a
    requirement: weights, optimiser state and random state are the same on either).

    >>> resume_device("cpu", "runs/x")
    device(type='cpu')
    """
    if device == "cuda" and not torch.cuda.is_available():
        print(f"{source} trained on cuda; no CUDA device here, so it continues on the cpu", file=sys.stderr)
        return torch.device("cpu")
    return resolve_device(device)


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise TrainError("device 'cuda' was asked for but no CUDA device is available")
    if device not in ("cpu", "cuda"):
        raise TrainError(f"unknown device {device!r}; expected auto, cpu or cuda")
    return torch.device(device)


def build_model(options: TrainOptions, x_dim: int) -> nn.Module:
    """A freshly initialised model of the options' kind for ``x_dim`` input columns."""
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
        # the softmax block is x^b: every column but the descriptors
        n_descriptors = element_descriptors().shape[1] if options.representation == "bp" else 0
        config = CondVAEConfig(
            x_dim=x_dim, z_dim=options.latent_dim, beta=options.kl_weight, likelihood=options.likelihood,
            n_elements=x_dim - n_descriptors, free_bits=options.free_bits, adversary=options.adversary,
            conditional_prior=options.conditional_prior, property_weight=options.property_weight,
        )  # fmt: skip
        if hidden:
            config = replace(config, decoder_hidden=hidden, encoder_hidden=tuple(reversed(hidden)))
        return CondVAE(config)
    if options.model == "surrogate":
        return SurrogateEnsemble(
            SurrogateConfig(x_dim=x_dim, hidden=hidden or (128, 64), members=options.members)
        )
    config = DNNConfig(x_dim=x_dim)
    if hidden:
        config = replace(config, hidden=tuple(reversed(hidden)))
    return DNN(config)
