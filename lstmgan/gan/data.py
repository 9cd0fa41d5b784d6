"""MNIST / Fashion-MNIST as two tensors on the training device.

The images are decoded once into an N×1×28×28 float32 tensor in [-1, 1] (the range of the
generator's tanh) and batches are taken by indexing it, so there are no per-item transforms and no
DataLoader workers: at 28×28 the whole training set is ~190 MB and indexing is far faster.

Files are looked up in two layouts:

* torchvision's: ``<data_dir>/MNIST/raw/train-images-idx3-ubyte[.gz]`` (``FashionMNIST/raw`` for
  Fashion-MNIST), which is what ``download=True`` creates;
* flat: ``<data_dir>/train-images-idx3-ubyte[.gz]``, as Debian's ``dataset-fashion-mnist`` ships
  them in ``/usr/share/datasets/fashion-mnist``.

torchvision's IDX reader only opens uncompressed files, so ``.gz`` files are decompressed into a
temporary folder that is removed afterwards, no further than their IDX header promises; ``data_dir`` is
never written to unless downloading.
"""

from __future__ import annotations

import gzip
import math
import os
import tempfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from torch import Tensor
from torchvision.datasets import MNIST, FashionMNIST
from torchvision.datasets.mnist import read_image_file, read_label_file

from lstmgan.choices import DATASETS
from lstmgan.errors import UserError
from lstmgan.fs import LIMITS, MiB, open_regular
from lstmgan.gan.models import IMAGE_SHAPE

num_classes = 10

# The dataset names (config.DATASETS, the one list) → torchvision's classes, whose names are its folder names.
TORCHVISION: dict[str, type[MNIST]] = {"mnist": MNIST, "fashion-mnist": FashionMNIST}

_IMAGES_MAGIC = 2051  # IDX: unsigned bytes, 3 dimensions
_LABELS_MAGIC = 2049  # IDX: unsigned bytes, 1 dimension


def load_images(
    dataset: str,
    data_dir: Path | str,
    *,
    train: bool,
    download: bool = False,
    device: torch.device | str = "cpu",
) -> tuple[Tensor, Tensor]:
    """Return ``(images, labels)``: N×1×28×28 float32 in [-1, 1] and int64 class ids, on ``device``.

    ``download=True`` fetches the files with torchvision into torchvision's layout under ``data_dir``,
    but only when they are not already there. Anything missing or malformed raises ``UserError``.
    """
    _check_dataset(dataset)
    data_dir = Path(data_dir)
    split = "train" if train else "t10k"
    names = (f"{split}-images-idx3-ubyte", f"{split}-labels-idx1-ubyte")

    files = _find_files(dataset, data_dir, names)
    if files is None and download:
        _download(dataset, data_dir)
        files = _find_files(dataset, data_dir, names)
    if files is None:
        raise UserError(_missing_message(dataset, data_dir, names))

    image_file, label_file = files
    images = _read_idx(image_file, _IMAGES_MAGIC, read_image_file, dataset)
    labels = _read_idx(label_file, _LABELS_MAGIC, read_label_file, dataset)
    if images.shape[1:] != IMAGE_SHAPE[1:]:
        h, w = images.shape[1:]
        raise UserError(
            f"{image_file} holds {h}×{w} images, expected 28×28; it is not {dataset}; "
            f"{_how_to_get(dataset)}"
        )
    if len(images) != len(labels):
        raise UserError(
            f"{image_file} has {len(images)} images but {label_file} has {len(labels)} labels; "
            f"the files do not belong together; {_how_to_get(dataset)}"
        )
    if len(labels) and int(labels.max()) >= num_classes:
        raise UserError(f"{label_file} has label {int(labels.max())}, expected 0..9; {_how_to_get(dataset)}")

    # Convert on the device: moving uint8 is 4× less traffic than float32.
    images = images.to(device).unsqueeze(1).float().div_(127.5).sub_(1.0)
    return images, labels.to(device)


def class_names(dataset: str) -> list[str]:
    """Human-readable names of the 10 classes, e.g. for labelling plots: "0".."9" or "Trouser"."""
    _check_dataset(dataset)
    return [str(k) for k in range(num_classes)] if dataset == "mnist" else list(FashionMNIST.classes)


def iterate_batches(
    n: int, batch_size: int, generator: torch.Generator, *, drop_last: bool = False
) -> Iterator[Tensor]:
    """Yield int64 index tensors covering ``range(n)`` once, in an order drawn from ``generator``.

    The last batch is shorter when ``batch_size`` does not divide ``n``; it is kept so that every
    example is seen each epoch. Pass ``drop_last=True`` where a short batch hurts, e.g. a BatchNorm
    layer in training mode fails on a batch of one. Indices live on the generator's device (CPU for
    a default ``torch.Generator()``); indexing a CUDA tensor with them is fine.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    order = torch.randperm(n, generator=generator, device=generator.device)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        yield order[start : start + batch_size]


def _check_dataset(dataset: str) -> None:
    if dataset not in DATASETS:
        raise UserError(f"unknown dataset {dataset!r}; choose one of: {', '.join(DATASETS)}")


def _find_files(dataset: str, data_dir: Path, names: tuple[str, ...]) -> tuple[Path, ...] | None:
    """The first folder (torchvision layout, then flat) that holds all of ``names``, plain or .gz."""
    for folder in _candidate_folders(dataset, data_dir):
        found = [_existing(folder / name) for name in names]
        if all(found):
            return tuple(found)  # type: ignore[arg-type]
    return None


def _candidate_folders(dataset: str, data_dir: Path) -> list[Path]:
    return [data_dir / TORCHVISION[dataset].__name__ / "raw", data_dir]


def _existing(path: Path) -> Path | None:
    # Prefer the plain file: torchvision's download leaves both and the plain one needs no unzipping.
    for candidate in (path, path.with_name(path.name + ".gz")):
        if candidate.is_file():
            return candidate
    return None


def _read_idx(path: Path, magic: int, reader: Callable[[str], Tensor], dataset: str) -> Tensor:
    """Check the IDX header against the file size, then decode with torchvision's reader.

    The header is checked here because torchvision's reader only asserts (and asserts vanish under
    ``python -O``) and reports a truncated file as an opaque reshape error. A ``.gz`` file is decompressed
    only as far as its header promises (a gzip bomb costs a header, not gigabytes).
    """
    with tempfile.TemporaryDirectory(prefix="lstmgan-idx-") as tmp:
        plain = path
        if path.suffix == ".gz":
            plain = Path(tmp) / path.stem
            _gunzip(path, plain, magic, dataset)
        with open_regular(plain, "data", follow=True) as f:  # a regular file of bounded size, or one line
            size = os.fstat(f.fileno()).st_size
            _expected_size(path, f.read(_header_size(magic)), magic, dataset, size)
        return reader(str(plain))


def _header_size(magic: int) -> int:
    return 4 + 4 * (3 if magic == _IMAGES_MAGIC else 1)


def _gunzip(path: Path, plain: Path, magic: int, dataset: str) -> None:
    """Decompress `path` into `plain`, reading the IDX header first and then no more than it promises (one
    byte more tells a padded file): what a gzip stream holds is known only by decompressing it."""
    try:
        with open_regular(path, "data", follow=True) as raw, gzip.GzipFile(fileobj=raw) as src, \
                open(plain, "xb") as dst:
            header = src.read(_header_size(magic))
            left = _expected_size(path, header, magic, dataset) - len(header) + 1
            dst.write(header)
            while left > 0 and (chunk := src.read(min(left, 1 << 20))):
                dst.write(chunk)
                left -= len(chunk)
    except (OSError, EOFError, zlib.error) as exc:
        raise UserError(
            f"{path} is not a readable gzip file ({exc}); delete it and get it again: "
            f"{_how_to_get(dataset)}"
        ) from None


def _expected_size(shown: Path, header: bytes, magic: int, dataset: str, size: int | None = None) -> int:
    """The file size an IDX header promises, checked against the magic number, the data limit and (when
    given) the actual `size`."""
    ndim = 3 if magic == _IMAGES_MAGIC else 1
    fix = f"delete it and get it again: {_how_to_get(dataset)}"
    if len(header) < 4 + 4 * ndim:
        raise UserError(f"{shown} is too short to be an IDX file ({len(header) if size is None else size} bytes); "
                        f"{fix}")
    found = int.from_bytes(header[:4], "big")
    if found != magic:
        kind = "images" if magic == _IMAGES_MAGIC else "labels"
        raise UserError(f"{shown} has IDX magic number {found}, expected {magic} ({kind}); {fix}")
    dims = [int.from_bytes(header[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    expected = len(header) + math.prod(dims)
    if expected > LIMITS["data"]:
        raise UserError(f"{shown} promises {'×'.join(map(str, dims))} values ({expected / MiB:,.0f} MiB), more "
                        f"than a data file can be ({LIMITS['data'] / MiB:,.0f} MiB); {fix}")
    if size is not None and size != expected:
        raise UserError(
            f"{shown} is truncated or padded: its header says {'×'.join(map(str, dims))} "
            f"({expected} bytes) but it has {size} bytes{' or more' if size > expected else ''}; {fix}"
        )
    if dims[0] == 0:
        raise UserError(f"{shown} holds no examples; {fix}")
    return expected


def _download(dataset: str, data_dir: Path) -> None:
    cls = TORCHVISION[dataset]
    try:
        # Constructing the dataset downloads and unpacks all four files into <data_dir>/<Class>/raw.
        cls(root=str(data_dir), train=True, download=True)
    except (RuntimeError, OSError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(
            f"could not download {dataset} into {data_dir / cls.__name__ / 'raw'} ({first_line}); "
            f"{_offline_hint(dataset)}"
        ) from None


def _missing_message(dataset: str, data_dir: Path, names: tuple[str, ...]) -> str:
    folders = _candidate_folders(dataset, data_dir)
    # Name only the missing files of a folder that holds some of them: that is the likely mix-up.
    partial = [f for f in folders if any(_existing(f / n) for n in names)]
    missing = [n for n in names if not (partial and _existing(partial[0] / n))]
    files = " and ".join(f"{n}[.gz]" for n in missing)
    where = str(partial[0]) if partial else " or ".join(map(str, folders))
    return f"{dataset}: {files} not found in {where}; {_how_to_get(dataset)}"


def _how_to_get(dataset: str) -> str:
    return f"pass --download where internet is available, {_offline_hint(dataset)}"


def _offline_hint(dataset: str) -> str:
    if dataset == "fashion-mnist":
        return (
            "or offline: apt-get install dataset-fashion-mnist and pass "
            "--data-dir /usr/share/datasets/fashion-mnist"
        )
    return (
        "or copy the four IDX files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
        "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz) into --data-dir"
    )
