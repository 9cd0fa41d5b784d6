"""Issue 16: the file rules of a hostile shared file system, through the real CLI. Links are never written
through, every input is checked before a run changes, only regular files of bounded size are read, names
too long for the file system are bad input. Each refusal is one line, exit 2, and changes nothing."""

from __future__ import annotations

import os
import shutil

import pytest
import yaml
from conftest import TINY, snapshot

ARGS = ["palindrome", "--model", "rnn", "--length", "4", *TINY, "--quiet"]


def one_line_refusal(r, *words):
    assert r.code == 2 and all(w in r.err for w in words), r.err
    assert len(r.err.strip().splitlines()) == 1, r.err


@pytest.fixture
def trained(cli, tmp_path):
    """A finished one-epoch palindrome run, and a folder outside --out that a planted link points at."""
    assert cli(*ARGS, "--epochs", "1", "--out", tmp_path / "out").code == 0
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("not lstmgan's to touch\n")
    return tmp_path / "out" / "palindrome-runs" / "rnn-L4-s0", outside


@pytest.mark.parametrize("force", [False, True], ids=["plain", "force"])
def test_a_run_folder_that_is_a_link_is_refused_and_its_target_untouched(cli, tmp_path, trained, force):
    run, outside = trained
    shutil.rmtree(run)
    run.symlink_to(outside, target_is_directory=True)
    before = snapshot(tmp_path)
    r = cli(*ARGS, "--epochs", "1", "--out", tmp_path / "out", *(["--force"] if force else []))
    one_line_refusal(r, str(run), "symbolic link")
    assert snapshot(tmp_path) == before and sorted(os.listdir(outside)) == ["precious.txt"]


@pytest.mark.parametrize("command", [
    ["sweep", "--lengths", "3", "--models", "rnn", "--epochs", "1", "--jobs", "1", *TINY],
    ["study", "--preset", "quick", "--set", "sweep.lengths=[3]", "--set", "sweep.epochs=1", "--wandb", "disabled"],
], ids=["sweep", "study"])
def test_a_sweep_folder_that_is_a_link_is_refused_before_any_run_trains(cli, tmp_path, command):
    """The runs' parent, not only each run folder: found only when the summary was written, the runs had
    already trained through the link into its target."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "palindrome").symlink_to(outside, target_is_directory=True)
    r = cli(*command, "--quiet", "--out", tmp_path / "out")
    one_line_refusal(r, str(tmp_path / "out" / "palindrome"), "symbolic link")
    assert os.listdir(outside) == [] and os.listdir(tmp_path / "out") == ["palindrome"]


def test_a_gan_run_whose_samples_folder_is_a_link_or_a_file_is_refused_before_anything_changes(cli, tmp_path):
    from idx import make_tiny_mnist

    make_tiny_mnist(tmp_path / "data", n_train=256, n_test=64)
    args = ["gan", "--data-dir", tmp_path / "data", "--epochs", "1", "--device", "cpu", "--wandb", "disabled",
            "--quiet", "--set", "batch_size=64", "--set", "eval_every=0", "--set", "eval_samples=64",
            "--out", tmp_path / "out"]
    assert cli(*args).code == 0
    run = tmp_path / "out" / "gan" / "mnist-s0"
    (run / "result.json").unlink()  # stopped after its last checkpoint: a rerun would resume and write samples
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.rmtree(run / "samples")
    (run / "samples").symlink_to(outside, target_is_directory=True)
    before = snapshot(tmp_path)
    one_line_refusal(cli(*args), str(run / "samples"), "symbolic link")
    assert snapshot(tmp_path) == before and os.listdir(outside) == []

    (run / "samples").unlink()
    (run / "samples").write_text("a file where a folder belongs")
    before = snapshot(tmp_path)
    one_line_refusal(cli(*args), str(run / "samples"), "not a folder")
    assert snapshot(tmp_path) == before


def test_collect_does_not_write_figures_through_a_link(cli, tmp_path, trained):
    run, outside = trained
    figures = run.parent / "figures"
    shutil.rmtree(figures, ignore_errors=True)
    figures.symlink_to(outside, target_is_directory=True)
    r = cli("collect", run.parent, "--wandb", "disabled")
    one_line_refusal(r, str(figures), "symbolic link")
    assert sorted(os.listdir(outside)) == ["precious.txt"]


def test_sample_does_not_write_into_a_folder_that_is_a_link(cli, tmp_path):
    from test_readers import gan_folder

    from lstmgan.config import GanConfig
    from lstmgan.gan.models import Generator

    run = gan_folder(tmp_path, {"epoch": 3, "generator": Generator(GanConfig().latent_dim).state_dict()})
    (tmp_path / "outside").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "outside", target_is_directory=True)
    r = cli("sample", run, "--device", "cpu", "--n", "4", "--out", tmp_path / "link" / "s.npy")
    one_line_refusal(r, str(tmp_path / "link"), "symbolic link")
    assert os.listdir(tmp_path / "outside") == []


def test_a_link_planted_under_a_temp_name_is_removed_never_followed(cli, tmp_path, trained):
    run, outside = trained
    (run / "result.json").unlink()  # so the rerun resumes: it then clears temp files a killed writer left
    planted = run / ".checkpoint.pt.0123456789abcdef.tmp"
    planted.symlink_to(outside / "precious.txt")
    assert cli(*ARGS, "--epochs", "2", "--out", tmp_path / "out").code == 0
    assert not os.path.lexists(planted) and (outside / "precious.txt").read_text() == "not lstmgan's to touch\n"


def test_a_checkpoint_of_another_model_size_is_bad_input_and_the_run_stays_as_it_was(cli, tmp_path, trained):
    run, _ = trained
    assert cli(*ARGS, "--epochs", "1", "--set", "hidden=32", "--out", tmp_path / "big").code == 0
    shutil.copy(tmp_path / "big" / "palindrome-runs" / "rnn-L4-s0" / "checkpoint.pt", run / "checkpoint.pt")
    before = snapshot(run)
    r = cli(*ARGS, "--epochs", "3", "--out", tmp_path / "out")  # more epochs: would resume from that checkpoint
    one_line_refusal(r, str(run / "checkpoint.pt"), "another config", "--force")
    assert snapshot(run) == before


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", ["result.json", "config.yaml", ".lstmgan.lock", "metrics.jsonl"])
def test_a_fifo_in_a_run_folder_is_named_never_waited_on(cli, tmp_path, trained, name):
    run, _ = trained
    (run / name).unlink(missing_ok=True)
    os.mkfifo(run / name)
    before = snapshot(tmp_path)
    r = cli(*ARGS, "--epochs", "1", "--out", tmp_path / "out")
    one_line_refusal(r, str(run / name), "FIFO")
    assert snapshot(tmp_path) == before and os.path.exists(run / name)


@pytest.mark.timeout(60)
def test_status_and_collect_name_a_fifo_result_and_go_on(cli, tmp_path, trained):
    run, _ = trained
    (run / "result.json").unlink()
    os.mkfifo(run / "result.json")
    for command in (["status", run.parent], ["collect", run.parent, "--wandb", "disabled"]):
        r = cli(*command)
        assert "result.json is a FIFO" in r.out + r.err and "Traceback" not in r.err, (command, r.out, r.err)


@pytest.mark.timeout(60)
def test_metrics_linked_to_dev_zero_is_named_not_read(cli, tmp_path, trained):
    run, _ = trained
    (run / "result.json").unlink()
    (run / "metrics.jsonl").unlink()
    (run / "metrics.jsonl").symlink_to("/dev/zero")
    r = cli(*ARGS, "--epochs", "2", "--out", tmp_path / "out")
    one_line_refusal(r, str(run / "metrics.jsonl"), "symbolic link")
    r = cli("report", run.parent, "--wandb", "disabled")
    one_line_refusal(r, str(run / "metrics.jsonl"))


def test_a_run_folder_name_too_long_for_the_file_system_is_bad_input(tmp_path):
    """Where rundir and the lock create folders, ENAMETOOLONG is a UserError (exit 2), and nothing is made.
    (Through the CLI, `--out` reaches W&B's group file and `sample --out` its own exists() first: see main.)"""
    from lstmgan.config import PalindromeConfig, run_config_dict
    from lstmgan.errors import UserError
    from lstmgan.lock import RunLock
    from lstmgan.rundir import RunDir, prepare

    run = RunDir(tmp_path / "palindrome" / ("x" * 300))
    with pytest.raises(UserError, match="too long for the file system"):
        prepare(run, run_config_dict(PalindromeConfig()), force=False)
    with pytest.raises(UserError, match="too long for the file system"):
        RunLock(run.path).acquire()
    assert not (tmp_path / "palindrome").exists() or os.listdir(tmp_path / "palindrome") == []


def forge_checkpoint(cli, tmp_path, run):
    """Put weights of hidden size 32 into run's checkpoint under its own config (hidden 16): only loading the
    weights into the run's model can tell."""
    import torch

    big = tmp_path / "big" / "palindrome-runs" / "rnn-L4-s0"
    assert cli(*ARGS, "--epochs", "1", "--set", "hidden=32", "--out", tmp_path / "big").code == 0
    forged = torch.load(big / "checkpoint.pt", weights_only=True)
    forged["config"] = torch.load(run / "checkpoint.pt", weights_only=True)["config"]  # claims hidden=16
    torch.save(forged, run / "checkpoint.pt")


def test_a_forged_checkpoint_whose_weights_do_not_fit_is_refused_by_the_fit_check_before_any_change(
        cli, tmp_path, trained):
    """The checkpoint's own config can lie; the trainer's fit check (weights into the model the config
    builds) is run by `decide` before prepare writes anything."""

    from lstmgan.config import PalindromeConfig, from_dict, run_config_dict
    from lstmgan.errors import UserError
    from lstmgan.palindrome.data import NUM_DIGITS, input_dim
    from lstmgan.palindrome.models import build_model
    from lstmgan.rundir import RunDir, prepare

    run, _ = trained
    forge_checkpoint(cli, tmp_path, run)
    stored = yaml.safe_load((run / "config.yaml").read_text())
    cfg = from_dict(PalindromeConfig, {**stored, "epochs": 3}, "config.yaml")
    config = run_config_dict(cfg)

    def fits(ckpt):
        model = build_model(cfg.model, input_dim(cfg.encoding), cfg.hidden, NUM_DIGITS, cfg.init, cfg.init_std)
        model.load_state_dict(ckpt["model"])

    before = snapshot(run)
    with pytest.raises(UserError, match=r"checkpoint.pt does not fit this run's model \(.*size mismatch"):
        prepare(RunDir(run), config, force=False, check_checkpoint=fits)
    assert snapshot(run) == before


def test_force_on_a_run_with_a_link_inside_removes_the_link_not_its_target(cli, tmp_path, trained):
    run, outside = trained
    (run / "samples").symlink_to(outside, target_is_directory=True)
    (run / "config.yaml").unlink()
    (run / "config.yaml").symlink_to(outside / "precious.txt")
    assert cli(*ARGS, "--epochs", "1", "--out", tmp_path / "out", "--force").code == 0
    assert not os.path.lexists(run / "samples") and not (run / "config.yaml").is_symlink()
    assert yaml.safe_load((run / "config.yaml").read_text())["epochs"] == 1
    assert sorted(os.listdir(outside)) == ["precious.txt"]
    assert (outside / "precious.txt").read_text() == "not lstmgan's to touch\n"


def test_a_too_long_out_is_bad_input_through_the_cli(cli, tmp_path):
    one_line_refusal(cli(*ARGS, "--epochs", "1", "--out", tmp_path / ("x" * 300)), "too long for the file system")
    assert os.listdir(tmp_path) == []


def test_a_forged_checkpoint_is_bad_input_through_the_cli_and_the_run_stays_as_it_was(cli, tmp_path, trained):
    run, _ = trained
    forge_checkpoint(cli, tmp_path, run)
    before = snapshot(run)
    r = cli(*ARGS, "--epochs", "3", "--out", tmp_path / "out")
    one_line_refusal(r, str(run / "checkpoint.pt"), "does not fit this run's model", "size mismatch", "--force")
    assert snapshot(run) == before
