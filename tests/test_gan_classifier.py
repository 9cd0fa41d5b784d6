"""The small CNN that judges generated digits (gan/classifier.py): it learns, is deterministic, saves and
loads with its meta, and refuses a file it cannot trust."""


from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import Tensor

from lstmgan.errors import UserError
from lstmgan.gan.classifier import SmallCNN, load_classifier, save_classifier, train_and_save, train_classifier
from lstmgan.gan.models import Generator


def test_classifier_exposes_features_and_logits() -> None:
    model = SmallCNN().eval()
    x = torch.zeros(3, 1, 28, 28)
    assert model.features(x).shape == (3, 128)
    assert model(x).shape == (3, 10)


def test_classifier_learns_the_synthetic_digits(tiny_classifier: tuple[SmallCNN, float]) -> None:
    model, accuracy = tiny_classifier
    assert accuracy >= 0.95
    assert not model.training


def test_classifier_training_is_deterministic_and_leaves_the_global_rng_alone(
    tiny_digits: tuple[Tensor, ...], tiny_classifier: tuple[SmallCNN, float]
) -> None:
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    again, accuracy = train_classifier(*tiny_digits, epochs=2, batch_size=32, lr=3e-3, seed=0, device="cpu")

    assert torch.rand(1) == expected_next
    assert accuracy == tiny_classifier[1]
    for a, b in zip(tiny_classifier[0].state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)


def test_saved_classifier_loads_back_with_its_meta(tmp_path: Path, tiny_classifier: tuple[SmallCNN, float]) -> None:
    model, accuracy = tiny_classifier
    path = tmp_path / "classifier.pt"
    save_classifier(model, path, {"dataset": "mnist", "test_accuracy": accuracy})

    loaded, meta = load_classifier(path, device="cpu")

    assert meta == {"dataset": "mnist", "test_accuracy": accuracy}
    assert not loaded.training
    x = torch.zeros(2, 1, 28, 28)
    assert torch.equal(loaded(x), model(x))
    assert [p.name for p in tmp_path.iterdir()] == ["classifier.pt"]  # no temp file left behind


def test_a_classifier_that_could_not_be_saved_is_refused_before_training(
    tmp_path: Path, tiny_digits: tuple[Tensor, ...]
) -> None:
    (tmp_path / "file").write_text("")
    progress: list[tuple] = []
    with pytest.raises(UserError, match="is under a file"):
        train_and_save("mnist", tiny_digits[:2], tiny_digits[2:], tmp_path / "file" / "classifiers" / "mnist.pt",
                       device="cpu", progress=lambda *step: progress.append(step))
    assert progress == []  # not one batch trained


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
