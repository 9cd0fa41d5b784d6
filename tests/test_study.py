"""The study's pieces: the packaged study file and its presets, the one GAN job builder, the strips."""

import json
from pathlib import Path

import pytest
from idx import make_tiny_mnist

from lstmgan.config import GanConfig, TrackingConfig
from lstmgan.errors import UserError
from lstmgan.experiments import gan_job, interpolation_strips, load_study, study_jobs

OFF = TrackingConfig(mode="disabled")


def test_the_packaged_study_loads_by_name_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    full, quick = load_study("study", None, {}), load_study("study", "quick", {})
    assert full.gan.epochs == 200 and full.sweep.seeds == [0, 1, 2, 3, 4]
    # The quick preset trains its GAN long enough for the interpolation strip (see study.yaml's comment).
    assert (quick.gan.epochs, quick.gan.limit, quick.interpolation_pairs) == (15, 10000, 1)
    assert quick.interpolation_min_confidence == 0.9


def test_a_bad_presets_section_is_one_line(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("presets: [quick]\n")
    with pytest.raises(UserError, match="presets must be a mapping"):
        load_study(path, "quick", {})
    path.write_text("presets:\n  quick:\n")  # an empty preset is the top level as it is
    assert load_study(path, "quick", {}).gan.epochs == 200


def test_one_gan_job_builder_for_the_gan_command_and_the_study(tmp_path):
    cfg = GanConfig(dataset="fashion-mnist", seed=3)
    job = gan_job(cfg, tmp_path / "gan", OFF, force=False)  # `lstmgan gan --out tmp --name gan`
    assert job.run_dir == tmp_path / "gan" / "fashion-mnist-s3"
    assert job.config.classifier == str(tmp_path / "classifiers" / "fashion-mnist.pt")  # shared under --out
    assert job.tracking.group.startswith("gan-") and (job.tracking.job_type, job.step_key) == ("gan", "step")
    mine = gan_job(GanConfig(classifier="/models/c.pt"), tmp_path / "x", OFF, force=True)
    assert mine.config.classifier == "/models/c.pt" and mine.force

    study = load_study("study", "quick", {})
    first, *_, last = study_jobs(study, tmp_path / "s1", OFF, force=False)
    assert last.run_dir == tmp_path / "s1" / "gan" / "mnist-s0"
    assert last.tracking.group == first.tracking.group  # the study's runs are one W&B group
    assert last.tracking.group.startswith("s1-")


def test_the_study_interpolates_with_its_own_confidence_rule(tmp_path):
    data = tmp_path / "data"
    make_tiny_mnist(data, n_train=512, n_test=128)
    study = load_study("study", None, {
        "gan.data_dir": str(data), "gan.epochs": 1, "gan.batch_size": 32, "gan.eval_samples": 100,
        "gan.device": "cpu", "interpolation_pairs": 1, "interpolation_steps": 3,
        "interpolation_min_confidence": 0.05})  # a 1-epoch GAN on noise: any two classes will do
    job = gan_job(study.gan, tmp_path / "gan", OFF, force=False)
    job()
    (strip,) = interpolation_strips(study, job.run_dir)
    assert len(strip["classes"]) == 3 + 2 and Path(strip["png"]).exists()
    stored = json.loads((job.run_dir / "interpolation" / "lerp.json").read_text())
    assert stored["min_confidence"] == 0.05
    from lstmgan.results.report import build_report

    report = build_report(tmp_path)  # tmp_path is laid out as a study folder: gan/<run>/
    assert "both ends read as their class with confidence ≥ 0.05" in report.md_path.read_text()  # states the rule
