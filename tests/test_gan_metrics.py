"""Classifier-FID and the class statistics (gan/metrics.py), against the textbook formula."""


from __future__ import annotations


import numpy as np
import pytest
import torch

from lstmgan.gan.classifier import SmallCNN
from lstmgan.gan.metrics import class_histogram, classifier_features, frechet_distance, mean_max_prob


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


def test_classifier_features_batches_and_restores_the_mode(tiny_classifier: tuple[SmallCNN, float]) -> None:
    model, _ = tiny_classifier
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
