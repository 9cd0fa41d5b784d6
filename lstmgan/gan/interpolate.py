"""Latent-space interpolation between two confidently different digits, drawn as a PNG strip.

``find_pair`` picks two latent vectors the classifier reads as different classes, ``interpolate``
decodes the path between them (lerp or slerp) and classifies every frame, ``render_strip`` draws it.
Both result dataclasses turn into JSON with ``to_dict()`` so a run can record what it drew.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from lstmgan.fs import write_bytes_atomic
from lstmgan.gan.models import eval_mode


def lerp(z0: Tensor, z1: Tensor, steps: int) -> Tensor:
    """``steps`` evenly spaced points strictly between ``z0`` and ``z1`` on the straight line, with
    both endpoints: a (steps+2)×D tensor whose first row is ``z0`` and last row is ``z1``."""
    t = _fractions(z0, z1, steps)
    a, b = z0.flatten().double(), z1.flatten().double()
    path = (1 - t) * a + t * b
    return _pin_endpoints(path, z0, z1)


def slerp(z0: Tensor, z1: Tensor, steps: int) -> Tensor:
    """Like ``lerp`` but along the great circle (scaled between the two norms).

    A Gaussian latent concentrates near the sphere of radius sqrt(D); the straight line cuts through
    the low-density interior (its midpoint has ~1/sqrt(2) of the norm), slerp stays on the shell
    (White, "Sampling Generative Networks", 2016). Falls back to ``lerp`` for (anti)parallel inputs,
    where the great circle is undefined or numerically unstable.
    """
    t = _fractions(z0, z1, steps)
    a, b = z0.flatten().double(), z1.flatten().double()
    cos = torch.dot(a, b) / (a.norm() * b.norm()).clamp(min=1e-12)
    omega = torch.arccos(cos.clamp(-1.0, 1.0))
    if float(torch.sin(omega)) < 1e-6:
        return lerp(z0, z1, steps)
    path = (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)
    return _pin_endpoints(path, z0, z1)


def _fractions(z0: Tensor, z1: Tensor, steps: int) -> Tensor:
    if z0.numel() != z1.numel():
        raise ValueError(f"latents differ in size: {z0.numel()} and {z1.numel()}")
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    return torch.linspace(0.0, 1.0, steps + 2, dtype=torch.float64, device=z0.device).unsqueeze(1)


def _pin_endpoints(path: Tensor, z0: Tensor, z1: Tensor) -> Tensor:
    # Exact endpoints, so the strip's ends are the very images find_pair classified.
    path = path.to(z0.dtype)
    path[0], path[-1] = z0.flatten(), z1.flatten()
    return path


@dataclass(frozen=True, eq=False)  # eq=False: == on tensor fields is ambiguous
class Pair:
    """Two latents whose generated images the classifier reads as different classes, confidently."""

    z0: Tensor  # 1-D, on the CPU
    z1: Tensor
    class0: int
    class1: int
    confidence0: float
    confidence1: float
    candidates: int  # latents drawn before the pair was complete

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: every field, the latents as lists."""
        return {**vars(self), "z0": self.z0.tolist(), "z1": self.z1.tolist()}


@dataclass(frozen=True, eq=False)
class Strip:
    """Decoded frames of an interpolation and the classifier's reading of each."""

    method: str  # "lerp" or "slerp"
    latents: Tensor  # K×D, on the CPU
    images: Tensor  # K×C×H×W in [-1, 1], on the CPU
    classes: list[int]
    confidences: list[float]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary; the images themselves go to the PNG."""
        return {**{k: v for k, v in vars(self).items() if k != "images"}, "latents": self.latents.tolist()}


@torch.no_grad()
def find_pair(
    generator: nn.Module,
    classifier: nn.Module,
    *,
    latent_dim: int,
    min_confidence: float = 0.9,
    max_tries: int = 16,
    batch_size: int = 256,
    generator_rng: torch.Generator,
    device: torch.device | str = "cpu",
) -> Pair | None:
    """Draw up to ``max_tries`` batches of ``batch_size`` latents from ``generator_rng`` and return the
    first two whose images are classified as different classes, each with probability
    >= ``min_confidence``; ``None`` if no such pair turns up (e.g. a collapsed generator).
    ``classifier`` is a ``SmallCNN`` or any module mapping images to class logits.

    Latents are drawn on the RNG's device and then moved, so a CPU ``torch.Generator`` gives the same
    pair on any device. Both networks run in eval mode (BatchNorm uses its running statistics, so an
    image does not depend on the rest of its batch) and get their previous modes back afterwards.
    """
    first: tuple[Tensor, int, float] | None = None
    with eval_mode(generator, classifier):
        for attempt in range(max_tries):
            z = torch.randn(batch_size, latent_dim, generator=generator_rng, device=generator_rng.device)
            classes, confidences = _classify(classifier, generator(z.to(device)))
            for i in torch.nonzero(confidences >= min_confidence).flatten().tolist():
                cls, conf = int(classes[i]), float(confidences[i])
                if first is None:
                    first = (z[i].cpu(), cls, conf)
                elif cls != first[1]:
                    return Pair(
                        z0=first[0],
                        z1=z[i].cpu(),
                        class0=first[1],
                        class1=cls,
                        confidence0=first[2],
                        confidence1=conf,
                        candidates=attempt * batch_size + i + 1,
                    )
    return None


@torch.no_grad()
def interpolate(
    generator: nn.Module,
    classifier: nn.Module,
    pair: Pair,
    *,
    steps: int,
    method: str = "slerp",
    device: torch.device | str = "cpu",
) -> Strip:
    """Decode ``steps`` intermediate latents between the pair's ends (plus both ends) and classify them."""
    paths = {"lerp": lerp, "slerp": slerp}
    if method not in paths:
        raise ValueError(f"method must be one of {sorted(paths)}, got {method!r}")
    latents = paths[method](pair.z0, pair.z1, steps)
    with eval_mode(generator, classifier):
        images = generator(latents.to(device))
        classes, confidences = _classify(classifier, images)
    return Strip(
        method=method,
        latents=latents.cpu(),
        images=images.float().cpu(),
        classes=[int(c) for c in classes],
        confidences=[float(c) for c in confidences],
    )


def _classify(classifier: nn.Module, images: Tensor) -> tuple[Tensor, Tensor]:
    """(predicted class, its probability) per image, on the CPU."""
    confidences, classes = classifier(images).float().softmax(dim=1).max(dim=1)
    return classes.cpu(), confidences.cpu()


def render_strip(
    images: Tensor,
    labels: Sequence[int | str],
    confidences: Sequence[float],
    path: Path | str,
) -> None:
    """Write a 1×K PNG of K grey images in [-1, 1] with "label (confidence)" under each, atomically.

    Uses matplotlib's object API on the Agg canvas: no pyplot, so no global figure state and no
    display needed.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    k = len(images)
    if not (k == len(labels) == len(confidences)) or k == 0:
        counts = f"{k}, {len(labels)}, {len(confidences)}"
        raise ValueError(f"need K >= 1 images, labels and confidences, got {counts}")
    fig = Figure(figsize=(1.1 * k, 1.5), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, k, squeeze=False)[0]
    for ax, img, label, conf in zip(axes, images.detach().float().cpu(), labels, confidences):
        ax.imshow(img.reshape(-1, img.shape[-1]).numpy(), cmap="gray", vmin=-1.0, vmax=1.0)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel(f"{label} ({conf:.2f})", fontsize=8)
    fig.subplots_adjust(left=0.01, right=0.99, top=0.98, bottom=0.2, wspace=0.05)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    write_bytes_atomic(Path(path), buffer.getvalue())
