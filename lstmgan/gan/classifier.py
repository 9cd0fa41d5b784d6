"""A small CNN that judges generated digits: classifier-FID features, class histograms, interpolations.

Inception-v3 FID is meaningless on 28×28 grey digits and needs a download, so the GAN is scored with
a CNN trained here on the same data, in the same [-1, 1] range the generator produces. Its 128-d
penultimate layer plays the role of Inception's pool features.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lstmgan.errors import UserError
from lstmgan.fs import check_writable, open_regular, save_torch_atomic
from lstmgan.gan.data import iterate_batches, num_classes

FEATURE_DIM = 128
TRAIN_EPOCHS = 3  # the GAN trainer's cache and the `classifier` command's default alike
_FORMAT = "lstmgan.gan.classifier.SmallCNN/1"  # bump when the architecture changes


def cache_path(out: Path, dataset: str) -> Path:
    """Where GAN runs under `out` and the `classifier` command keep the classifier of `dataset`: one per data."""
    return out / "classifiers" / f"{dataset}.pt"


class SmallCNN(nn.Module):
    """Two conv blocks (28→14→7) and a 128-unit feature layer; ~0.2 M parameters, CPU-friendly."""

    def __init__(self) -> None:
        super().__init__()
        # Pool before BatchNorm: the same function class, but BN runs on 4× fewer pixels, which is
        # a large share of a CPU step at this size.
        self.conv = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.MaxPool2d(2),  # 14×14
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.MaxPool2d(2),  # 7×7
            nn.BatchNorm2d(32),
            nn.ReLU(),
        )
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(32 * 7 * 7, FEATURE_DIM), nn.ReLU())
        self.head = nn.Linear(FEATURE_DIM, num_classes)

    def features(self, x: Tensor) -> Tensor:
        """N×1×28×28 images in [-1, 1] → N×128 penultimate activations (the FID features)."""
        return self.fc(self.conv(x))

    def forward(self, x: Tensor) -> Tensor:
        """N×1×28×28 images in [-1, 1] → N×10 logits."""
        return self.head(self.features(x))


def train_classifier(
    images: Tensor,
    labels: Tensor,
    test_images: Tensor,
    test_labels: Tensor,
    *,
    epochs: int = 3,
    batch_size: int = 128,
    lr: float = 3e-3,
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress: Callable[[int, int, str], None] | None = None,
) -> tuple[SmallCNN, float]:
    """Train a ``SmallCNN`` with Adam and return it (in eval mode) with its test accuracy in [0, 1].

    ``progress(done, total, text)`` hears about batches now and then (done/total count batches).

    Deterministic on CPU for a given ``seed``: weight init runs under a forked, seeded global RNG (so
    the caller's RNG state is untouched) and batches are shuffled by a seeded ``torch.Generator``.
    """
    device = torch.device(device)
    with torch.random.fork_rng(devices=[]):  # init runs on the CPU, so only its RNG is involved
        torch.manual_seed(seed)
        model = SmallCNN()
    model.to(device)
    shuffle = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    steps = epochs * -(-len(images) // batch_size)
    # One-cycle LR gets a high accuracy in very few epochs, which keeps this a minute on a laptop.
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=max(steps, 1))

    # drop_last: a batch of one would break BatchNorm in training mode.
    drop_last = len(images) % batch_size == 1
    batches = epochs * (len(images) // batch_size if drop_last else -(-len(images) // batch_size))
    done, started, report_every = 0, time.perf_counter(), max(1, batches // 100)
    model.train()
    for epoch in range(epochs):
        for idx in iterate_batches(len(images), batch_size, shuffle, drop_last=drop_last):
            x = images[idx].to(device, non_blocking=True)
            y = labels[idx].to(device, non_blocking=True)
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            done += 1
            if progress is not None and (done % report_every == 0 or done == batches):
                rate = done * batch_size / max(time.perf_counter() - started, 1e-9)
                progress(done, batches, f"classifier epoch {epoch + 1}/{epochs}, {rate:.0f} images/s")
    model.eval()
    return model, accuracy(model, test_images, test_labels, batch_size=1024)


@torch.no_grad()
def accuracy(model: nn.Module, images: Tensor, labels: Tensor, *, batch_size: int = 1024) -> float:
    """Fraction of ``images`` whose argmax logit equals the label (``model`` should be in eval mode)."""
    device = next(model.parameters()).device
    correct = 0
    for start in range(0, len(images), batch_size):
        x = images[start : start + batch_size].to(device)
        y = labels[start : start + batch_size].to(device)
        correct += int((model(x).argmax(dim=1) == y).sum())
    return correct / max(len(images), 1)


def data_digest(train: tuple[Tensor, Tensor], test: tuple[Tensor, Tensor]) -> str:
    """What identifies the data a classifier sees: a sha256 of the decoded images and labels of both splits
    (the IDX files' content, whatever their layout or compression), 16 hex digits."""
    digest = hashlib.sha256()
    for tensor in (*train, *test):
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def data_text(meta: dict[str, Any]) -> str:
    """Which data a saved classifier saw: `mnist, 60000 training images, data sha256 0123abcd…`."""
    seen = f"{meta.get('dataset', 'an unnamed dataset')}, {meta.get('train_images', '?')} training images"
    return seen + (f", data sha256 {meta['data']}" if meta.get("data") else ", data digest not recorded")


def mismatch(meta: dict[str, Any], dataset: str, digest: str) -> str | None:
    """Why a saved classifier does not fit this data (another dataset, or the same name on other images, or a
    classifier saved before digests were recorded), or None when it was trained on exactly this data."""
    if meta.get("dataset") == dataset and meta.get("data") == digest:
        return None
    return f"it was trained on {data_text(meta)}, not on this data ({dataset}, data sha256 {digest})"


def cached_classifier(path: Path, dataset: str, train: tuple[Tensor, Tensor], test: tuple[Tensor, Tensor],
                      device: torch.device | str, *,
                      warn: Callable[[str], None]) -> tuple[SmallCNN, dict[str, Any]] | None:
    """The classifier cached at path with its meta if it was trained on exactly this data, else None. A cache
    of other data is said through `warn` and left for the caller to replace: it is lstmgan's own, per dataset."""
    if not path.exists():
        return None
    model, meta = load_classifier(path, device)
    why = mismatch(meta, dataset, data_digest(train, test))
    if why is None:
        return model, meta
    warn(f"{path}: {why}; training one on this data")
    return None


def train_and_save(dataset: str, train: tuple[Tensor, Tensor], test: tuple[Tensor, Tensor], path: Path | str,
                   *, epochs: int = TRAIN_EPOCHS, device: torch.device | str,
                   progress: Callable[[int, int, str], None] | None = None) -> tuple[SmallCNN, dict[str, Any]]:
    """The one place that trains the judging classifier, saves it and labels it with the data it saw (its
    dataset and `data_digest`; the GAN trainer's cache and the `classifier` command both come here). Seed 0:
    one classifier per data. A folder it cannot write to fails here, not after minutes of training."""
    check_writable(Path(path).parent)
    digest = data_digest(train, test)
    model, accuracy = train_classifier(*train, *test, epochs=epochs, seed=0, device=device, progress=progress)
    meta = {"dataset": dataset, "data": digest, "test_accuracy": accuracy, "train_images": len(train[0])}
    save_classifier(model, path, meta)
    return model, meta


def save_classifier(model: SmallCNN, path: Path | str, meta: dict[str, Any]) -> None:
    """Write weights and ``meta`` (e.g. dataset, test_accuracy; plain str/int/float/bool/list/dict
    values only, so that ``weights_only`` loading accepts them) to ``path`` atomically: a crash
    leaves either the old file or the new one, never half of one."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    save_torch_atomic({"format": _FORMAT, "meta": dict(meta), "state_dict": state}, Path(path))


def load_classifier(path: Path | str, device: torch.device | str = "cpu") -> tuple[SmallCNN, dict[str, Any]]:
    """Return the saved ``SmallCNN`` (in eval mode, on ``device``) and its ``meta`` dict.

    A missing, corrupt, truncated or foreign file raises ``UserError``.
    """
    path = Path(path)
    fix = "delete it so that the classifier is trained again"
    if not path.is_file():
        raise UserError(f"classifier checkpoint {path} does not exist; train the classifier first")
    try:
        with open_regular(path, "checkpoint", follow=True) as f:
            payload = torch.load(f, map_location="cpu", weights_only=True)
    except UserError:  # a link, FIFO or device in the classifier's place: named in one line
        raise
    except Exception as exc:  # torch raises many types here: zip, unpickling, EOF, runtime errors
        reason = type(exc).__name__
        raise UserError(f"{path} is not a readable classifier checkpoint ({reason}); {fix}") from None
    if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
        raise UserError(f"{path} is not a {_FORMAT} checkpoint; {fix}")
    model = SmallCNN()
    try:
        model.load_state_dict(payload["state_dict"])
    except (RuntimeError, KeyError, TypeError) as exc:
        first_line = str(exc).strip().splitlines()[0]
        raise UserError(f"{path} does not match the SmallCNN architecture ({first_line}); {fix}") from None
    return model.to(device).eval(), dict(payload.get("meta", {}))
