"""Write tiny but real IDX files (the MNIST file format) so tests exercise torchvision's reader.

IDX: a big-endian uint32 magic number (2051 for uint8 3-D images, 2049 for uint8 1-D labels), one
big-endian uint32 per dimension, then the raw bytes.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049

# torchvision's folder for each dataset name lstmgan accepts.
TORCHVISION_FOLDERS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}


def _write(path: Path, data: bytes, gz: bool) -> Path:
    path = Path(str(path) + ".gz") if gz and not str(path).endswith(".gz") else Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def write_idx_images(path: Path | str, images: np.ndarray, gz: bool = False) -> Path:
    """Write an N×H×W uint8 array; ``gz`` appends ``.gz`` and compresses. Returns the path written."""
    images = np.ascontiguousarray(images, dtype=np.uint8)
    assert images.ndim == 3, images.shape
    header = np.array([IMAGES_MAGIC, *images.shape], dtype=">u4").tobytes()
    return _write(Path(path), header + images.tobytes(), gz)


def write_idx_labels(path: Path | str, labels: np.ndarray, gz: bool = False) -> Path:
    """Write N uint8 labels; ``gz`` appends ``.gz`` and compresses. Returns the path written."""
    labels = np.ascontiguousarray(labels, dtype=np.uint8)
    assert labels.ndim == 1, labels.shape
    header = np.array([LABELS_MAGIC, len(labels)], dtype=">u4").tobytes()
    return _write(Path(path), header + labels.tobytes(), gz)


def synthetic_digits(n: int, seed: int = 0, noise: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """N×28×28 uint8 images and their labels, cycling through the 10 classes.

    Class k is a bright 8×8 square at the k-th cell of a 4×3 grid over dark noise: trivially
    learnable, yet each image is different.
    """
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    images = rng.integers(0, noise + 1, size=(n, 28, 28), dtype=np.int64)
    for i, k in enumerate(labels):
        row, col = 2 + 6 * (k // 3), 1 + 9 * (k % 3)
        images[i, row : row + 8, col : col + 8] += 180
    return np.clip(images, 0, 255).astype(np.uint8), labels.astype(np.uint8)


def make_tiny_mnist(
    directory: Path | str,
    n_train: int,
    n_test: int,
    layout: str = "torchvision",
    gz: bool = False,
    dataset: str = "mnist",
    seed: int = 0,
    noise: int = 60,
) -> Path:
    """Write the four IDX files of a tiny synthetic MNIST under ``directory`` and return the folder
    that holds them: ``<directory>/MNIST/raw`` (``FashionMNIST/raw``) for the torchvision layout,
    ``directory`` itself for the flat layout (as Debian ships Fashion-MNIST). Pass ``directory`` as
    ``data_dir`` either way."""
    if layout not in ("torchvision", "flat"):
        raise ValueError(f"layout must be 'torchvision' or 'flat', got {layout!r}")
    directory = Path(directory)
    folder = directory / TORCHVISION_FOLDERS[dataset] / "raw" if layout == "torchvision" else directory
    for split, n, split_seed in (("train", n_train, seed), ("t10k", n_test, seed + 1)):
        images, labels = synthetic_digits(n, split_seed, noise)
        write_idx_images(folder / f"{split}-images-idx3-ubyte", images, gz=gz)
        write_idx_labels(folder / f"{split}-labels-idx1-ubyte", labels, gz=gz)
    return folder
