"""The fully connected GAN of the classic PyTorch-GAN ``gan.py`` example, with one bug fixed.

That example builds ``nn.BatchNorm1d(out_feat, 0.8)``: the second positional argument is ``eps``,
not ``momentum``, so it adds 0.8 to every variance and mostly disables the normalisation. Here
BatchNorm keeps its default ``eps=1e-5``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

from torch import Tensor, nn

IMAGE_SHAPE = (1, 28, 28)  # C×H×W of MNIST and Fashion-MNIST


def _block(in_features: int, out_features: int, *, batch_norm: bool) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Linear(in_features, out_features)]
    if batch_norm:
        layers.append(nn.BatchNorm1d(out_features))  # default eps; see the module docstring
    layers.append(nn.LeakyReLU(0.2))
    return layers


class Generator(nn.Module):
    """z (N×latent_dim) → images (N×C×H×W) in [-1, 1]: MLP 128-256-512-1024 with BatchNorm, tanh."""

    def __init__(self, latent_dim: int = 100) -> None:
        super().__init__()
        self.net = nn.Sequential(
            *_block(latent_dim, 128, batch_norm=False),  # no BN on the first layer, as in the original
            *_block(128, 256, batch_norm=True),
            *_block(256, 512, batch_norm=True),
            *_block(512, 1024, batch_norm=True),
            nn.Linear(1024, math.prod(IMAGE_SHAPE)),
            nn.Tanh(),  # matches the data's [-1, 1] normalisation
        )

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z).view(z.shape[0], *IMAGE_SHAPE)


class Discriminator(nn.Module):
    """Images (N×C×H×W) → one real/fake logit per image (N×1); pair it with ``BCEWithLogitsLoss``."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(),
            nn.Linear(math.prod(IMAGE_SHAPE), 512),
            nn.LeakyReLU(0.2),
            nn.Linear(512, 256),
            nn.LeakyReLU(0.2),
            nn.Linear(256, 1),  # a logit: no sigmoid, the loss applies it in a numerically stable way
        )

    def forward(self, img: Tensor) -> Tensor:
        return self.net(img)


@contextmanager
def eval_mode(*modules: nn.Module) -> Iterator[None]:
    """Modules in eval mode for a block (BatchNorm uses its running statistics, so an output does not
    depend on the rest of its batch); each gets its own previous mode back afterwards."""
    modes = [m.training for m in modules]
    try:
        for m in modules:
            m.eval()
        yield
    finally:
        for m, mode in zip(modules, modes):
            m.train(mode)
