"""Sample-quality numbers computed with the small classifier: classifier-FID and class statistics."""

from __future__ import annotations

import torch
from torch import Tensor

from lstmgan.environment import no_tf32
from lstmgan.gan.classifier import SmallCNN
from lstmgan.gan.models import eval_mode


def frechet_distance(feats_a: Tensor, feats_b: Tensor) -> float:
    """Fréchet distance between Gaussians fitted to two N×D feature sets (FID's formula):

        |mu_a - mu_b|² + tr(A) + tr(B) - 2 tr((A^½ B A^½)^½)

    where A, B are the sample covariances. ``tr(sqrtm(A B))`` equals ``tr(sqrtm(A^½ B A^½))`` and the
    latter is a symmetric PSD matrix, so both square roots come from ``eigh`` in float64 with
    negative round-off eigenvalues clipped to 0; this never produces the complex parts that
    ``scipy.linalg.sqrtm(A @ B)`` can.
    """
    if feats_a.ndim != 2 or feats_b.ndim != 2 or feats_a.shape[1] != feats_b.shape[1]:
        shapes = f"{tuple(feats_a.shape)} and {tuple(feats_b.shape)}"
        raise ValueError(f"need two N×D feature sets with the same D, got {shapes}")
    if len(feats_a) < 2 or len(feats_b) < 2:
        raise ValueError("need at least 2 samples in each set to estimate a covariance")
    a = feats_a.detach().to(torch.float64)
    b = feats_b.detach().to(feats_a.device, torch.float64)
    mu_a, mu_b = a.mean(dim=0), b.mean(dim=0)
    cov_a, cov_b = torch.cov(a.T), torch.cov(b.T)  # unbiased (N-1), like numpy.cov in reference FID
    vals, vecs = torch.linalg.eigh((cov_a + cov_a.T) / 2)  # symmetrised: round-off leaves a hair of asymmetry
    sqrt_a = (vecs * vals.clamp(min=0).sqrt()) @ vecs.T
    middle = sqrt_a @ cov_b @ sqrt_a
    cross = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp(min=0).sqrt().sum()
    fd = (mu_a - mu_b).square().sum() + cov_a.trace() + cov_b.trace() - 2 * cross
    return max(float(fd), 0.0)  # tiny negatives are round-off for identical sets


@torch.no_grad()
def classifier_features(model: SmallCNN, images: Tensor, batch_size: int = 1024) -> tuple[Tensor, Tensor]:
    """Run ``model`` over ``images`` → ``(features N×128, probs N×10)``, on the CPU.

    Batches go to the model's device; the model is put in eval mode and its mode restored after. TF32 is
    off while it runs, so classifier-FID does not depend on a GPU's (or PyTorch version's) defaults.
    """
    device = next(model.parameters()).device
    feats, probs = [], []
    with eval_mode(model), no_tf32():
        for start in range(0, len(images), batch_size):
            f = model.features(images[start : start + batch_size].to(device))
            feats.append(f.float().cpu())
            probs.append(model.head(f).float().softmax(dim=1).cpu())
    return torch.cat(feats), torch.cat(probs)


def class_histogram(probs: Tensor) -> list[int]:
    """How many samples the classifier assigns to each class (argmax), one count per class."""
    return torch.bincount(probs.argmax(dim=1), minlength=probs.shape[1]).tolist()


def mean_max_prob(probs: Tensor) -> float:
    """Mean top-class probability: near 1 when samples look like clear digits, 0.1 for noise."""
    return float(probs.max(dim=1).values.float().mean())
