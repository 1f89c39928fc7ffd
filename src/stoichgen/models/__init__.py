"""The models, one readable ``nn.Module`` per file, and the registry that names them.

A new model kind is one file here and one line in ``MODEL_KINDS``: checkpoints store the kind's class
name, and every room asks the registry what a kind can do instead of testing classes.

>>> MODEL_KINDS["cgan"].samples, MODEL_KINDS["cgan"].predicts, kind_of_class("DNN").name
(True, True, 'dnn')
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from stoichgen.models.cgan import CondGAN, CondGANConfig
from stoichgen.models.cvae import CondVAE, CondVAEConfig
from stoichgen.models.dnn import DNN, DNNConfig
from stoichgen.models.surrogate import SurrogateConfig, SurrogateEnsemble

__all__ = [
    "DNN",
    "MODEL_KINDS",
    "CondGAN",
    "CondGANConfig",
    "CondVAE",
    "CondVAEConfig",
    "DNNConfig",
    "SurrogateConfig",
    "SurrogateEnsemble",
    "ModelKind",
    "kind_of",
    "kind_of_class",
]


@dataclass(frozen=True)
class ModelKind:
    """What a model kind is (``name`` as on the command line, ``label`` as in the paper and in
    checkpoints) and can do: ``samples`` compositions at a target, ``predicts`` the property."""

    name: str
    label: str
    module: type[nn.Module]
    config: type
    samples: bool
    predicts: bool
    spread: bool = False  # predicts a spread (uncertainty) beside the property


MODEL_KINDS: dict[str, ModelKind] = {
    kind.name: kind
    for kind in (
        ModelKind("cgan", "CondGAN", CondGAN, CondGANConfig, samples=True, predicts=True),
        ModelKind("cvae", "CondVAE", CondVAE, CondVAEConfig, samples=True, predicts=False),
        ModelKind("dnn", "DNN", DNN, DNNConfig, samples=False, predicts=True),
        ModelKind(
            "surrogate",
            "Surrogate",
            SurrogateEnsemble,
            SurrogateConfig,
            samples=False,
            predicts=True,
            spread=True,
        ),
    )
}


def kind_of_class(label: str) -> ModelKind:
    """The kind whose ``label`` (a checkpoint's model class) is ``label``; KeyError if none."""
    for kind in MODEL_KINDS.values():
        if kind.label == label:
            return kind
    raise KeyError(label)


def kind_of(model: nn.Module) -> ModelKind:
    """The kind of a model instance."""
    for kind in MODEL_KINDS.values():
        if type(model) is kind.module:
            return kind
    raise KeyError(type(model).__name__)
