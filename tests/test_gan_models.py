"""The GAN's networks (gan/models.py): shapes, ranges, the layers the original uses."""


from __future__ import annotations


import torch
from torch import nn

from lstmgan.gan.models import Discriminator, Generator


def test_generator_maps_latents_to_images_in_tanh_range() -> None:
    torch.manual_seed(0)
    images = Generator(latent_dim=100)(torch.randn(5, 100))
    assert images.shape == (5, 1, 28, 28)
    assert images.min() >= -1 and images.max() <= 1


def test_generator_batchnorm_keeps_the_default_eps() -> None:
    # The widespread copy passes BatchNorm1d(n, 0.8), i.e. eps=0.8 by mistake.
    norms = [m for m in Generator().modules() if isinstance(m, nn.BatchNorm1d)]
    assert [m.num_features for m in norms] == [256, 512, 1024]
    assert all(m.eps == 1e-5 and m.momentum == 0.1 for m in norms)


def test_discriminator_returns_one_logit_per_image() -> None:
    logits = Discriminator()(torch.rand(5, 1, 28, 28) * 2 - 1)
    assert logits.shape == (5, 1)
    assert not isinstance(list(Discriminator().net)[-1], nn.Sigmoid)  # BCEWithLogitsLoss applies it
