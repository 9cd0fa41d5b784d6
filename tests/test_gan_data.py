"""How the GAN's data loader finds, checks and decodes MNIST-style IDX files."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch
from idx import make_tiny_mnist, synthetic_digits, write_idx_images, write_idx_labels

from lstmgan.errors import UserError
from lstmgan.gan.data import class_names, iterate_batches, load_images, num_classes

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.parametrize("layout", ["torchvision", "flat"])
@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gz"])
@pytest.mark.parametrize("dataset", ["mnist", "fashion-mnist"])
def test_loads_both_layouts_plain_or_gzipped(tmp_path: Path, layout: str, gz: bool, dataset: str) -> None:
    make_tiny_mnist(tmp_path, n_train=30, n_test=20, layout=layout, gz=gz, dataset=dataset)

    images, labels = load_images(dataset, tmp_path, train=True)
    test_images, test_labels = load_images(dataset, tmp_path, train=False)

    assert images.shape == (30, 1, 28, 28) and images.dtype == torch.float32
    assert labels.shape == (30,) and labels.dtype == torch.int64
    assert test_images.shape == (20, 1, 28, 28) and test_labels.shape == (20,)
    expected_pixels, expected_labels = synthetic_digits(30, seed=0)
    assert torch.equal(labels, torch.from_numpy(expected_labels).long())
    # Pixel p in 0..255 becomes p/127.5 - 1, the generator's tanh range.
    assert torch.allclose(images[:, 0], torch.from_numpy(expected_pixels).float() / 127.5 - 1)


def test_pixels_span_minus_one_to_one(tmp_path: Path) -> None:
    folder = tmp_path / "MNIST" / "raw"
    pixels = np.zeros((2, 28, 28), dtype=np.uint8)
    pixels[1] = 255
    for split in ("train", "t10k"):
        write_idx_images(folder / f"{split}-images-idx3-ubyte", pixels)
        write_idx_labels(folder / f"{split}-labels-idx1-ubyte", np.array([3, 7]))

    images, labels = load_images("mnist", tmp_path, train=True)

    assert images[0].unique().tolist() == [-1.0] and images[1].unique().tolist() == [1.0]
    assert labels.tolist() == [3, 7]


def test_prefers_the_plain_file_when_the_gz_is_also_there(tmp_path: Path) -> None:
    # torchvision's download leaves both; a stale or broken .gz next to a good file must not matter.
    folder = make_tiny_mnist(tmp_path, n_train=10, n_test=10)
    (folder / "train-images-idx3-ubyte.gz").write_bytes(b"not gzip")

    images, _ = load_images("mnist", tmp_path, train=True)

    assert len(images) == 10


def test_never_writes_to_the_data_folder(tmp_path: Path) -> None:
    # Debian's /usr/share/datasets is read-only; .gz files are decompressed elsewhere.
    make_tiny_mnist(tmp_path, n_train=10, n_test=10, layout="flat", gz=True)
    before = sorted(p.name for p in tmp_path.iterdir())
    tmp_path.chmod(0o555)
    try:
        load_images("mnist", tmp_path, train=True)
    finally:
        tmp_path.chmod(0o755)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


# "meta" is a real device without storage: it shows that the device is honoured where no GPU is.
@pytest.mark.parametrize("device", ["meta", pytest.param("cuda", marks=pytest.mark.cuda)])
def test_images_land_on_the_requested_device(tmp_path: Path, device: str) -> None:
    make_tiny_mnist(tmp_path, n_train=10, n_test=10)
    images, labels = load_images("mnist", tmp_path, train=True, device=torch.device(device))
    assert images.device.type == labels.device.type == device
    assert images.shape == (10, 1, 28, 28) and images.dtype == torch.float32


def test_every_configurable_dataset_has_a_torchvision_class() -> None:
    from lstmgan.choices import DATASETS
    from lstmgan.gan.data import TORCHVISION

    assert set(TORCHVISION) == set(DATASETS)


def test_missing_files_name_the_expected_places_and_the_fixes(tmp_path: Path) -> None:
    with pytest.raises(UserError) as err:
        load_images("fashion-mnist", tmp_path, train=True)
    message = str(err.value)
    assert "train-images-idx3-ubyte[.gz]" in message
    assert str(tmp_path / "FashionMNIST" / "raw") in message and str(tmp_path) in message
    assert "--download" in message
    assert "apt-get install dataset-fashion-mnist" in message
    assert "--data-dir /usr/share/datasets/fashion-mnist" in message
    assert "\n" not in message


def test_a_missing_labels_file_is_named_on_its_own(tmp_path: Path) -> None:
    folder = make_tiny_mnist(tmp_path, n_train=10, n_test=10, layout="flat")
    (folder / "t10k-labels-idx1-ubyte").unlink()

    with pytest.raises(UserError, match=r"mnist: t10k-labels-idx1-ubyte\[\.gz\] not found in"):
        load_images("mnist", tmp_path, train=False)
    load_images("mnist", tmp_path, train=True)  # the training split is complete and still loads


def test_unknown_dataset_lists_the_choices(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="unknown dataset 'cifar10'; choose one of: mnist, fashion-mnist"):
        load_images("cifar10", tmp_path, train=True)


def test_class_names_label_plots() -> None:
    assert class_names("mnist")[7] == "7"
    assert class_names("fashion-mnist")[:2] == ["T-shirt/top", "Trouser"]
    assert len(class_names("fashion-mnist")) == num_classes


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gz"])
def test_wrong_magic_number_is_a_user_error(tmp_path: Path, gz: bool) -> None:
    folder = make_tiny_mnist(tmp_path, n_train=10, n_test=10, gz=gz)
    # A labels file where the images file should be: valid IDX, wrong kind.
    write_idx_labels(folder / "train-images-idx3-ubyte", np.zeros(10), gz=gz)

    with pytest.raises(UserError, match="has IDX magic number 2049, expected 2051 .images.; delete it"):
        load_images("mnist", tmp_path, train=True)


def test_truncated_file_is_a_user_error(tmp_path: Path) -> None:
    folder = make_tiny_mnist(tmp_path, n_train=10, n_test=10)
    path = folder / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])

    with pytest.raises(UserError, match=r"is truncated or padded: its header says 10×28×28 \(7856 bytes\)"):
        load_images("mnist", tmp_path, train=True)


def test_truncated_gzip_is_a_user_error(tmp_path: Path) -> None:
    folder = make_tiny_mnist(tmp_path, n_train=10, n_test=10, gz=True)
    path = folder / "train-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-5])

    with pytest.raises(UserError, match="train-labels-idx1-ubyte.gz is not a readable gzip file"):
        load_images("mnist", tmp_path, train=True)


@pytest.mark.parametrize("extra", [1, 1 << 20], ids=["one byte", "a megabyte"])
def test_a_gzip_holding_more_than_its_header_promises_is_refused_after_one_byte_more(tmp_path: Path,
                                                                                     extra: int) -> None:
    folder = make_tiny_mnist(tmp_path, n_train=10, n_test=10)
    plain = folder / "train-images-idx3-ubyte"
    gz = plain.with_name(plain.name + ".gz")
    gz.write_bytes(gzip.compress(plain.read_bytes() + bytes(extra)))
    plain.unlink()

    # Decompression stops one byte past the promise: the size it reports is the promise + 1, whatever follows.
    with pytest.raises(UserError, match=r"truncated or padded: its header says 10×28×28 \(7856 bytes\) but it has "
                                        r"7857 bytes or more"):
        load_images("mnist", tmp_path, train=True)


def test_a_header_promising_more_than_a_data_file_can_be_is_refused(tmp_path: Path) -> None:
    folder = make_tiny_mnist(tmp_path, n_train=10, n_test=10, gz=True)
    header = np.array([2051, 2_000_000, 28, 28], dtype=">u4").tobytes()
    (folder / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(header))

    with pytest.raises(UserError, match=r"promises 2000000×28×28 values \(1,495 MiB\), more than a data file can be"):
        load_images("mnist", tmp_path, train=True)


def test_empty_file_is_a_user_error(tmp_path: Path) -> None:
    folder = make_tiny_mnist(tmp_path, n_train=10, n_test=10)
    (folder / "train-labels-idx1-ubyte").write_bytes(b"")

    with pytest.raises(UserError, match="is too short to be an IDX file"):
        load_images("mnist", tmp_path, train=True)


def test_images_that_are_not_28_by_28_are_a_user_error(tmp_path: Path) -> None:
    folder = make_tiny_mnist(tmp_path, n_train=10, n_test=10)
    write_idx_images(folder / "train-images-idx3-ubyte", np.zeros((10, 32, 32)))

    with pytest.raises(UserError, match="holds 32×32 images, expected 28×28"):
        load_images("mnist", tmp_path, train=True)


def test_image_and_label_counts_must_match(tmp_path: Path) -> None:
    folder = make_tiny_mnist(tmp_path, n_train=10, n_test=10)
    write_idx_labels(folder / "train-labels-idx1-ubyte", np.zeros(9))

    with pytest.raises(UserError, match="has 10 images but .* has 9 labels"):
        load_images("mnist", tmp_path, train=True)


def test_labels_outside_0_to_9_are_a_user_error(tmp_path: Path) -> None:
    folder = make_tiny_mnist(tmp_path, n_train=10, n_test=10)
    write_idx_labels(folder / "train-labels-idx1-ubyte", np.full(10, 12))

    with pytest.raises(UserError, match="has label 12, expected 0..9"):
        load_images("mnist", tmp_path, train=True)


def test_download_is_skipped_when_the_files_are_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_tiny_mnist(tmp_path, n_train=10, n_test=10, layout="flat", gz=True)
    monkeypatch.setattr("torchvision.datasets.MNIST.mirrors", ["http://127.0.0.1:9/"])

    images, _ = load_images("mnist", tmp_path, train=True, download=True)

    assert len(images) == 10


def test_failed_download_is_a_user_error_with_the_offline_route(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Port 9 (discard) on localhost refuses at once: a stand-in for "no internet".
    monkeypatch.setattr("torchvision.datasets.FashionMNIST.mirrors", ["http://127.0.0.1:9/"])

    offline_route = "apt-get install dataset-fashion-mnist"
    with pytest.raises(UserError, match=f"could not download fashion-mnist into .*{offline_route}"):
        load_images("fashion-mnist", tmp_path, train=True, download=True)


@pytest.mark.skipif(not DEBIAN_FASHION_MNIST.is_dir(), reason="apt-get install dataset-fashion-mnist")
def test_reads_debians_fashion_mnist_package() -> None:
    images, labels = load_images("fashion-mnist", DEBIAN_FASHION_MNIST, train=False)
    assert images.shape == (10_000, 1, 28, 28)
    assert labels.bincount().tolist() == [1000] * 10
    assert images.min() == -1.0 and images.max() == 1.0


def test_batches_cover_every_index_once_in_a_seeded_order() -> None:
    batches = list(iterate_batches(10, 4, torch.Generator().manual_seed(0)))
    again = list(iterate_batches(10, 4, torch.Generator().manual_seed(0)))

    assert [len(b) for b in batches] == [4, 4, 2]  # the short last batch is kept by default
    assert sorted(torch.cat(batches).tolist()) == list(range(10))
    assert all(torch.equal(a, b) for a, b in zip(batches, again))
    assert torch.cat(batches).tolist() != list(range(10))


def test_batches_can_drop_the_short_last_one() -> None:
    batches = list(iterate_batches(10, 4, torch.Generator().manual_seed(0), drop_last=True))
    assert [len(b) for b in batches] == [4, 4]


def test_gzip_fixture_really_is_gzip(tmp_path: Path) -> None:
    # Guards the test helper itself: the .gz tests above must go through decompression.
    path = write_idx_labels(tmp_path / "labels", np.arange(3), gz=True)
    assert path.name == "labels.gz"
    assert gzip.decompress(path.read_bytes())[:4] == (2049).to_bytes(4, "big")
