"""Interpolation in latent space (gan/interpolate.py): the paths, the confident pair of two classes, the strip."""


from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from matplotlib.image import imread
from torch import Tensor, nn

from lstmgan.gan.classifier import SmallCNN
from lstmgan.gan.interpolate import Pair, find_pair, interpolate, lerp, render_strip, slerp
from lstmgan.gan.models import Generator


@pytest.mark.parametrize("path", [lerp, slerp])
def test_paths_include_both_endpoints_exactly(path) -> None:
    g = torch.Generator().manual_seed(0)
    z0, z1 = torch.randn(100, generator=g), torch.randn(100, generator=g)
    zs = path(z0, z1, 6)
    assert zs.shape == (8, 100) and zs.dtype == z0.dtype
    assert torch.equal(zs[0], z0) and torch.equal(zs[-1], z1)


def test_slerp_stays_on_the_latent_shell_where_lerp_cuts_inside() -> None:
    g = torch.Generator().manual_seed(0)
    z0 = torch.randn(100, generator=g)
    z1 = torch.randn(100, generator=g)
    z1 = z1 * z0.norm() / z1.norm()  # equal norms: slerp keeps it constant

    slerp_norms = slerp(z0, z1, 5).norm(dim=1)
    lerp_norms = lerp(z0, z1, 5).norm(dim=1)

    assert torch.allclose(slerp_norms, z0.norm().expand(7), rtol=1e-5)
    assert lerp_norms[3] < 0.8 * z0.norm()  # nearly orthogonal in 100-d: the midpoint is ~0.7 of it


def test_slerp_of_parallel_latents_falls_back_to_lerp() -> None:
    z = torch.ones(4)
    assert torch.allclose(slerp(z, 2 * z, 1), lerp(z, 2 * z, 1))


class SignGenerator(nn.Module):
    """Image brightness = sign of z[0]: easy to reason about, with BatchNorm to check eval mode."""

    def __init__(self) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(1)

    def forward(self, z: Tensor) -> Tensor:
        return torch.sign(z[:, :1]).view(-1, 1, 1, 1).expand(-1, 1, 28, 28)


class BrightnessClassifier(nn.Module):
    """Bright images → class 7, dark → class 2, both with ~0.99 confidence; grey → unsure."""

    def __init__(self, confident: bool = True) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(5.0 if confident else 0.1))

    def forward(self, images: Tensor) -> Tensor:
        brightness = images.mean(dim=(1, 2, 3))
        logits = torch.zeros(len(images), 10)
        logits[:, 7] = self.scale * brightness
        logits[:, 2] = -self.scale * brightness
        return logits


def test_find_pair_returns_two_confident_different_classes() -> None:
    generator, classifier = SignGenerator().train(), BrightnessClassifier()
    pair = find_pair(generator, classifier, latent_dim=3, generator_rng=torch.Generator().manual_seed(0))

    assert pair is not None
    assert {pair.class0, pair.class1} == {2, 7}
    assert min(pair.confidence0, pair.confidence1) >= 0.9
    assert pair.z0.shape == pair.z1.shape == (3,)
    assert torch.sign(pair.z0[0]) != torch.sign(pair.z1[0])
    assert generator.training  # modes are restored


def test_find_pair_is_reproducible_from_the_rng() -> None:
    def draw() -> Pair | None:
        rng = torch.Generator().manual_seed(5)
        return find_pair(
            SignGenerator(), BrightnessClassifier(), latent_dim=3, batch_size=4, generator_rng=rng
        )

    first, second = draw(), draw()
    assert first is not None and second is not None
    assert torch.equal(first.z0, second.z0) and torch.equal(first.z1, second.z1)


def test_find_pair_gives_up_without_confident_or_varied_samples() -> None:
    unsure = BrightnessClassifier(confident=False)  # every probability < 0.9
    rng = torch.Generator().manual_seed(0)
    assert find_pair(SignGenerator(), unsure, latent_dim=3, max_tries=2, generator_rng=rng) is None

    class Collapsed(SignGenerator):  # every sample is the same bright image
        def forward(self, z: Tensor) -> Tensor:
            return torch.ones(len(z), 1, 28, 28)

    bright = BrightnessClassifier()
    assert find_pair(Collapsed(), bright, latent_dim=3, max_tries=2, generator_rng=rng) is None


def test_find_pair_and_interpolation_with_the_real_networks(tiny_classifier: tuple[SmallCNN, float]) -> None:
    torch.manual_seed(0)
    generator = Generator(latent_dim=16)
    with torch.no_grad():  # an untrained generator draws near-identical grey images; diversify them
        generator.net[-2].weight.mul_(50)
    classifier, _ = tiny_classifier
    rng = torch.Generator().manual_seed(0)

    pair = find_pair(generator, classifier, latent_dim=16, min_confidence=0.0, generator_rng=rng, max_tries=4)
    assert pair is not None and pair.class0 != pair.class1

    strip = interpolate(generator, classifier, pair, steps=4, method="slerp")
    assert strip.images.shape == (6, 1, 28, 28) and len(strip.classes) == len(strip.confidences) == 6
    # The ends are the very images find_pair classified (eval-mode BatchNorm: batch-independent).
    assert (strip.classes[0], strip.classes[-1]) == (pair.class0, pair.class1)
    assert strip.confidences[0] == pytest.approx(pair.confidence0, abs=1e-5)

    decoded = json.loads(json.dumps({"pair": pair.to_dict(), "strip": strip.to_dict()}))
    assert decoded["pair"]["z0"] == pytest.approx(pair.z0.tolist())
    assert decoded["strip"]["classes"] == strip.classes and len(decoded["strip"]["latents"]) == 6


def test_render_strip_writes_a_readable_png(tmp_path: Path) -> None:
    images = torch.linspace(-1, 1, 5).view(5, 1, 1, 1).expand(5, 1, 28, 28)
    path = tmp_path / "strips" / "interpolation.png"

    render_strip(images, [3, 3, 5, 8, 8], [0.99, 0.9, 0.5, 0.91, 0.97], path)

    pixels = imread(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert pixels.shape[1] > pixels.shape[0]  # one row of five
    assert sorted(p.name for p in path.parent.iterdir()) == ["interpolation.png"]


def test_render_strip_rejects_mismatched_lengths(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="need K >= 1 images"):
        render_strip(torch.zeros(2, 1, 28, 28), [1], [0.5, 0.5], tmp_path / "x.png")
