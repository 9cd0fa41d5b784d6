"""The study's pieces: the packaged study file and its presets, the one GAN job builder, the strips."""

import json
import re
from pathlib import Path

import pytest
from idx import make_tiny_mnist

from lstmgan.config import GanConfig, TrackingConfig
from lstmgan.errors import UserError
from lstmgan.experiments import StripsJob, gan_job, gan_jobs, load_study, study_jobs

OFF = TrackingConfig(mode="disabled")


def test_the_packaged_study_loads_by_name_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    full, quick = load_study("study", None, {}), load_study("study", "quick", {})
    assert full.gan.run.epochs == 200 and full.sweep.seeds == [0, 1, 2, 3, 4] and full.gan.seeds == [0, 1, 2]
    # The quick preset trains its GAN long enough for the interpolation strip (see study.yaml's comment).
    assert (quick.gan.run.epochs, quick.gan.run.limit, quick.interpolation_pairs) == (15, 10000, 1)
    assert quick.interpolation_min_confidence == 0.9


def test_a_bad_presets_section_is_one_line(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("presets: [quick]\n")
    with pytest.raises(UserError, match="presets must be a mapping"):
        load_study(path, "quick", {})
    path.write_text("presets:\n  quick:\n")  # an empty preset is the top level as it is
    assert load_study(path, "quick", {}).gan.run.epochs == 200


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
    assert last.run_dir == tmp_path / "s1" / "gan" / "mnist-s0" and isinstance(last, StripsJob)
    assert last.tracking.group == first.tracking.group  # the study's runs are one W&B group
    assert last.tracking.group.startswith("s1-")


def test_the_study_gan_job_makes_its_strips_with_the_studys_confidence_rule(tmp_path):
    data = tmp_path / "data"
    make_tiny_mnist(data, n_train=512, n_test=128)
    study = load_study("study", None, {
        "gan.data_dir": str(data), "gan.epochs": 1, "gan.batch_size": 32, "gan.eval_samples": 100,
        "gan.device": "cpu", "gan.seeds": [0], "interpolation_pairs": 1, "interpolation_steps": 3,
        "interpolation_min_confidence": 0.05})  # a 1-epoch GAN on noise: any two classes will do
    job = study_jobs(study, tmp_path, OFF, force=False)[-1]
    job()  # trains, then interpolates: the same call here and in a SLURM task
    stored = json.loads((job.run_dir / "interpolation" / "lerp.json").read_text())
    assert stored["min_confidence"] == 0.05 and len(stored["strips"][0]["classes"]) == 3 + 2
    assert Path(stored["strips"][0]["png"]).exists()
    made = (job.run_dir / "interpolation" / "lerp.json").stat().st_mtime_ns
    job()  # finished, strips there for this epoch and these settings: nothing redone
    assert (job.run_dir / "interpolation" / "lerp.json").stat().st_mtime_ns == made
    from lstmgan.results.report import build_report

    report = build_report(tmp_path)  # tmp_path is laid out as a study folder: gan/<run>/
    assert "both ends read as their class with confidence ≥ 0.05" in report.md_path.read_text()  # states the rule


def test_gan_seeds_and_grid_give_a_run_folder_each(tmp_path):
    from lstmgan.config import GanSweepConfig

    gan = GanSweepConfig(seeds=[0, 1], grid={"lr": ["1e-4", 2e-4]})
    names = [job.run_dir.name for job in gan_jobs(
        gan, tmp_path / "gan", OFF, force=False)]
    assert names == ["mnist-lr0.0001-s0", "mnist-lr0.0001-s1", "mnist-lr0.0002-s0", "mnist-lr0.0002-s1"]
    with pytest.raises(UserError, match="seed: 3 is ignored when seeds are given"):
        GanSweepConfig(seeds=[0, 1], run=GanConfig(seed=3))


def test_quick_study_then_report_opens_with_the_claims_tested(tmp_path, cli):
    """`lstmgan study --preset quick` then `lstmgan report` on MNIST-format digits, with tiny settings: the
    report opens with the claims table and computed verdicts, the ablation's explanation and the horizon."""
    data = tmp_path / "data"
    make_tiny_mnist(data, n_train=512, n_test=128)
    out = tmp_path / "study"
    tiny = ["sweep.lengths=5", "sweep.seeds=[0, 1]", "sweep.epochs=2", "ablation.epochs=2", "ablation.inits=pytorch",
            "gan.epochs=1", "gan.batch_size=32", "gan.eval_samples=100", "interpolation_min_confidence=0.05",
            *(f"{part}.{key}" for part in ("sweep", "ablation") for key in ("hidden=8", "samples=100"))]
    r = cli("study", "--preset", "quick", "--data-dir", data, "--out", out, "--device", "cpu", "--wandb", "disabled",
            "--quiet", *[arg for item in tiny for arg in ("--set", item)])
    assert r.code == 0, r.err
    assert sorted(p.name for p in (out / "ablation").iterdir()) == [  # forget biases vary the LSTM only
        "lstm-L15-pytorch-onehot-forget_bias0.0-s0", "lstm-L15-pytorch-onehot-forget_bias1.0-s0",
        "lstm-L15-pytorch-scalar-forget_bias0.0-s0", "lstm-L15-pytorch-scalar-forget_bias1.0-s0",
        "rnn-L15-pytorch-onehot-s0", "rnn-L15-pytorch-scalar-s0"]
    assert (out / "gan" / "mnist-s0" / "interpolation" / "lerp.json").exists()  # the GAN job made its strip
    r = cli("report", out, "--wandb", "disabled")
    assert r.code == 0, r.err
    md = (out / "report.md").read_text()
    first = [line for line in md.splitlines() if line.startswith("## ")][0]
    assert first == "## The original's claims, tested"
    rows = {line.split(" | ")[0].removeprefix("| "): line.split(" | ") for line in md.splitlines()
            if line.startswith(("| RNN, L = 5 |", "| LSTM, L = 5 |", "| GAN |"))}
    assert set(rows) == {"RNN, L = 5", "LSTM, L = 5", "GAN"}
    for name in ("RNN, L = 5", "LSTM, L = 5"):
        assert rows[name][5].startswith("quick: ") and rows[name][5] != "quick: not measured"  # 2 of 100 epochs
    assert "| RNN, L = 20 | performs very badly | – | – | – | not measured |" in md
    claims = md.split("## The original's claims, tested")[1].split("\n## ")[0]
    moves = "(moves it by [0-9.]+ points|does not move it)"  # which, the tiny runs decide
    assert re.search(f"LSTM at L = 15: .*encoding {moves}", claims) and re.search(f"forget_bias {moves}", claims)
    assert re.search(f"RNN at L = 15: encoding {moves}", claims) and not re.search("RNN at L = 15: .*forget_bias",
                                                                                    claims)
    assert "![" in claims and "figures/horizon.png" in claims and (out / "figures" / "horizon.png").exists()


def test_study_on_slurm_plans_every_run_as_array_tasks_and_writes_nothing(tmp_path, cli):
    data = tmp_path / "data"
    make_tiny_mnist(data, n_train=64, n_test=32)
    out = tmp_path / "study"
    args = ["study", "--preset", "quick", "--data-dir", data, "--out", out, "--wandb", "disabled", "--slurm",
            "--dry-run"]
    r = cli(*args)  # the default profile: a CPU, one run per task (24 sweep + 12 ablation + 1 GAN runs)
    assert r.code == 0, r.err
    assert "# 37 tasks for 37 runs" in r.out and "#SBATCH --array=0-36" in r.out
    tasks = [line for line in r.out.splitlines() if line.startswith("#   task ")]
    assert len(tasks) == 37 and any(line.endswith(str(out / "gan" / "mnist-s0")) for line in tasks)
    assert any("ablation/lstm-L15-pytorch-scalar-forget_bias1.0-s0" in line for line in tasks)
    assert "no GPU" in r.err  # the GAN on a CPU profile is warned about
    r = cli(*args, "--cluster", "example-gpu", "--set", "gan.seeds=[0, 1, 2]")  # runs share GPU tasks
    assert r.code == 0, r.err
    assert "# 8 tasks for 39 runs" in r.out
    assert sum(line.count(f"{out / 'gan'}/mnist-s") for line in r.out.splitlines()) == 3
    assert not out.exists()


def test_gan_seeds_and_grid_on_the_command_line(tmp_path, cli):
    data = tmp_path / "data"
    make_tiny_mnist(data, n_train=128, n_test=64)
    out = tmp_path / "runs"
    base = ["gan", "--data-dir", data, "--out", out, "--epochs", "1", "--device", "cpu", "--wandb", "disabled",
            "--quiet", "--set", "batch_size=32", "--set", "eval_samples=50"]
    r = cli(*base, "--seeds", "0", "1", "--grid", "lr=1e-4,2e-4", "--dry-run")
    assert r.code == 0, r.err
    assert "4 runs" in r.out and "mnist-lr0.0001-s1" in r.out and not out.exists()
    r = cli(*base, "--seeds", "0", "1", "--seed", "3")
    assert r.code == 2 and "seed: 3 is ignored when seeds are given" in r.err and not out.exists()
    r = cli(*base, "--seeds", "0", "1")
    assert r.code == 0, r.err
    lines = [line for line in r.out.splitlines() if "classifier-FID" in line]
    assert [line.split(":")[0] for line in lines] == ["mnist-s0", "mnist-s1"]
    assert all(": 1 epoch, classifier-FID" in line for line in lines), lines
    results = [json.loads((out / "gan" / f"mnist-s{s}" / "result.json").read_text()) for s in (0, 1)]
    assert all(r["epochs"] == 1 for r in results) and results[0]["fid"] != results[1]["fid"]  # two seeds, two runs
