"""The GAN's building blocks: networks, the judging classifier, classifier-FID and interpolation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from idx import make_tiny_mnist
from matplotlib.image import imread
from torch import Tensor, nn

from lstmgan.errors import UserError
from lstmgan.gan.classifier import SmallCNN, load_classifier, save_classifier, train_classifier
from lstmgan.gan.data import load_images
from lstmgan.gan.interpolate import Pair, find_pair, interpolate, lerp, render_strip, slerp
from lstmgan.gan.metrics import class_histogram, classifier_features, frechet_distance, mean_max_prob
from lstmgan.gan.models import Discriminator, Generator

# --- networks ----------------------------------------------------------------------------------


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


# --- classifier ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    folder = tmp_path_factory.mktemp("tiny-mnist")
    make_tiny_mnist(folder, n_train=300, n_test=100)
    return (*load_images("mnist", folder, train=True), *load_images("mnist", folder, train=False))


@pytest.fixture(scope="module")
def trained(synthetic: tuple[Tensor, ...]) -> tuple[SmallCNN, float]:
    return train_classifier(*synthetic, epochs=2, batch_size=32, lr=3e-3, seed=0, device="cpu")


def test_classifier_exposes_features_and_logits() -> None:
    model = SmallCNN().eval()
    x = torch.zeros(3, 1, 28, 28)
    assert model.features(x).shape == (3, 128)
    assert model(x).shape == (3, 10)


def test_classifier_learns_the_synthetic_digits(trained: tuple[SmallCNN, float]) -> None:
    model, accuracy = trained
    assert accuracy >= 0.95
    assert not model.training


def test_classifier_training_is_deterministic_and_leaves_the_global_rng_alone(
    synthetic: tuple[Tensor, ...], trained: tuple[SmallCNN, float]
) -> None:
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    again, accuracy = train_classifier(*synthetic, epochs=2, batch_size=32, lr=3e-3, seed=0, device="cpu")

    assert torch.rand(1) == expected_next
    assert accuracy == trained[1]
    for a, b in zip(trained[0].state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)


def test_saved_classifier_loads_back_with_its_meta(tmp_path: Path, trained: tuple[SmallCNN, float]) -> None:
    model, accuracy = trained
    path = tmp_path / "classifier.pt"
    save_classifier(model, path, {"dataset": "mnist", "test_accuracy": accuracy})

    loaded, meta = load_classifier(path, device="cpu")

    assert meta == {"dataset": "mnist", "test_accuracy": accuracy}
    assert not loaded.training
    x = torch.zeros(2, 1, 28, 28)
    assert torch.equal(loaded(x), model(x))
    assert [p.name for p in tmp_path.iterdir()] == ["classifier.pt"]  # no temp file left behind


def test_missing_classifier_checkpoint_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        load_classifier(tmp_path / "classifier.pt")


def test_truncated_classifier_checkpoint_says_to_delete_it(tmp_path: Path) -> None:
    path = tmp_path / "classifier.pt"
    save_classifier(SmallCNN(), path, {"dataset": "mnist"})
    path.write_bytes(path.read_bytes()[:1000])

    with pytest.raises(UserError, match=f"{path} is not a readable classifier checkpoint .*; delete it"):
        load_classifier(path)


def test_checkpoint_of_another_model_is_a_user_error(tmp_path: Path) -> None:
    path = tmp_path / "classifier.pt"
    torch.save(Generator().state_dict(), path)  # readable, but not ours
    with pytest.raises(UserError, match="is not a .*SmallCNN.* checkpoint; delete it"):
        load_classifier(path)

    save_classifier(SmallCNN(), path, {})
    payload = torch.load(path, weights_only=True)
    payload["state_dict"].pop("head.bias")
    torch.save(payload, path)
    with pytest.raises(UserError, match="does not match the SmallCNN architecture"):
        load_classifier(path)


# --- metrics ------------------------------------------------------------------------------------


def _reference_fd(a: np.ndarray, b: np.ndarray) -> float:
    """FID's textbook formula with tr(sqrtm(A @ B)) from the eigenvalues of A @ B (no scipy)."""
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    eig = np.linalg.eigvals(cov_a @ cov_b)  # real and >= 0 up to round-off: A @ B is similar to a PSD matrix
    return float(((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b)
                 - 2 * np.sqrt(np.clip(eig.real, 0, None)).sum())


def test_frechet_distance_of_a_set_with_itself_is_zero() -> None:
    feats = torch.randn(500, 16, generator=torch.Generator().manual_seed(0))
    assert frechet_distance(feats, feats) == pytest.approx(0.0, abs=1e-6)


def test_frechet_distance_of_a_shifted_set_is_the_squared_shift() -> None:
    feats = torch.randn(500, 16, generator=torch.Generator().manual_seed(0))
    shift = torch.linspace(-1, 2, 16)
    assert frechet_distance(feats, feats + shift) == pytest.approx(float(shift.square().sum()), rel=1e-6)


@pytest.mark.parametrize("seed", range(3))
def test_frechet_distance_agrees_with_the_textbook_formula(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(200, 8, generator=g) @ torch.randn(8, 8, generator=g)
    b = torch.randn(150, 8, generator=g) * 2 + 0.5
    try:
        from scipy import linalg  # the reference FID implementation's sqrtm, when available
    except ImportError:
        expected = _reference_fd(a.double().numpy(), b.double().numpy())
    else:
        an, bn = a.double().numpy(), b.double().numpy()
        ca, cb = np.cov(an, rowvar=False), np.cov(bn, rowvar=False)
        expected = float(((an.mean(0) - bn.mean(0)) ** 2).sum() + np.trace(ca) + np.trace(cb)
                         - 2 * np.trace(linalg.sqrtm(ca @ cb).real))
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)


def test_frechet_distance_survives_rank_deficient_features() -> None:
    # Fewer samples than dimensions: singular covariances, as with a dead ReLU unit or tiny evals.
    g = torch.Generator().manual_seed(0)
    fd = frechet_distance(torch.randn(10, 64, generator=g), torch.randn(10, 64, generator=g))
    assert np.isfinite(fd) and fd > 0


def test_class_statistics_from_probabilities() -> None:
    probs = torch.tensor([[0.9, 0.1, 0.0], [0.2, 0.8, 0.0], [0.6, 0.4, 0.0]])
    assert class_histogram(probs) == [2, 1, 0]
    assert mean_max_prob(probs) == pytest.approx((0.9 + 0.8 + 0.6) / 3)


def test_classifier_features_batches_and_restores_the_mode(trained: tuple[SmallCNN, float]) -> None:
    model, _ = trained
    model.train()
    images = torch.rand(7, 1, 28, 28) * 2 - 1
    feats, probs = classifier_features(model, images, batch_size=3)
    assert model.training  # its mode is given back...
    model.eval()
    # ...after running in eval mode: BatchNorm's running statistics, not those of batches of 3
    assert feats.shape == (7, 128) and probs.shape == (7, 10)
    assert torch.allclose(probs.sum(dim=1), torch.ones(7))
    assert torch.allclose(probs, model(images).softmax(dim=1), atol=1e-6)
    assert torch.allclose(feats, model.features(images), atol=1e-6)


# --- interpolation ------------------------------------------------------------------------------


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


def test_find_pair_and_interpolation_with_the_real_networks(trained: tuple[SmallCNN, float]) -> None:
    torch.manual_seed(0)
    generator = Generator(latent_dim=16)
    with torch.no_grad():  # an untrained generator draws near-identical grey images; diversify them
        generator.net[-2].weight.mul_(50)
    classifier, _ = trained
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
