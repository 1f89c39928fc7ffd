"""Building blocks shared by the models."""

from __future__ import annotations

from torch import nn


def mlp(sizes: tuple[int, ...]) -> nn.Sequential:
    """Fully connected layers with ReLU between them (none after the last).

    >>> mlp((3, 4, 2))
    Sequential(
      (0): Linear(in_features=3, out_features=4, bias=True)
      (1): ReLU()
      (2): Linear(in_features=4, out_features=2, bias=True)
    )
    """
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def linears(module: nn.Module) -> list[nn.Linear]:
    """The ``nn.Linear`` layers of a module, in order."""
    return [m for m in module.modules() if isinstance(m, nn.Linear)]
