"""What a newcomer sees first: help, version, completion, the packaged configs; all without importing torch."""

import importlib.metadata
import re

import pytest
from helpers import in_fresh_process

from lstmgan.cli.main import main


def test_help_and_h_list_the_commands(cli):
    long, short = cli("--help"), cli("-h")
    assert long.code == 0 and short.out == long.out
    for command in ("palindrome", "sweep", "gan", "study", "classifier", "interpolate", "sample", "status",
                    "collect", "sync", "report", "configs"):
        assert command in long.out
    assert "--install-completion" in long.out  # shell completion is on


def test_version_comes_from_the_package_metadata(cli):
    r = cli("--version")
    assert r.code == 0 and r.out.strip() == f"lstmgan {importlib.metadata.version('lstmgan')}"


def panel(text: str, title: str) -> str:
    """The lines of one rich help panel (from its title to the closing border)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if f"─ {title} ─" in line)
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("╰"))
    return "\n".join(lines[start:end])


SLURM_FLAGS = ["--slurm", "--cluster", "--partition", "--account", "--qos", "--time", "--gpus", "--cpus", "--mem",
               "--constraint", "--container", "--image", "--wait"]


@pytest.mark.parametrize("command", ["palindrome", "sweep", "gan"])
def test_command_help_groups_flags_in_panels_with_choices_and_defaults(cli, command, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # one option per line
    r = cli(command, "-h")
    assert r.code == 0
    slurm = panel(r.out, "SLURM")
    assert all(f"{flag} " in slurm for flag in SLURM_FLAGS)
    assert "--wandb-project" in panel(r.out, "W&B") and "auto | online | offline | disabled" in r.out
    assert "--print-config" in panel(r.out, "Output") and "--dry-run" in panel(r.out, "Output")
    assert "--set" in panel(r.out, "Training") and "auto|cpu|cuda" in panel(r.out, "Training")
    assert "[default: runs]" in r.out
    assert "--slurm" not in panel(r.out, "Training")


def test_study_help_has_only_the_flags_study_has(cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    r = cli("study", "--help")
    assert r.code == 0 and "--preset" in r.out and "--jobs" in r.out and "[default: study]" in r.out
    assert "--slurm" in r.out and "--name " not in r.out  # the whole study goes to SLURM too (issue 17)


def test_help_names_the_defaults_that_apply_and_no_bool_labels(cli, monkeypatch):
    from lstmgan.config import GanConfig, PalindromeConfig, SweepConfig

    monkeypatch.setenv("COLUMNS", "200")
    run, sweep, gan = PalindromeConfig(), SweepConfig(), GanConfig()
    palindrome_help, sweep_help, gan_help = (cli(c, "--help").out for c in ("palindrome", "sweep", "gan"))
    for text in (f"the config's, {run.length})", f"the config's, {run.seed})", f"the config's, {run.epochs})",
                 "(default: palindrome-runs)"):
        assert text in palindrome_help, text
    for text in (f"the config's, {' '.join(map(str, sweep.lengths))}.", f"the config's, {' '.join(sweep.models)}.",
                 f"the config's, {' '.join(map(str, sweep.seeds))}.", f"the config's, {sweep.name})"):
        assert text in sweep_help, text
    assert f"the config's, {gan.epochs})" in gan_help and "(default: gan)" in gan_help
    assert all("<bool>" not in text for text in (palindrome_help, sweep_help, gan_help, cli("--help").out))


def test_wandb_choices_never_wrap_mid_word_at_80_columns(cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    wandb = panel(cli("sweep", "--help").out, "W&B")
    words = re.findall(r"[\w-]+", wandb)  # a choice folded across lines would show as two pieces
    assert all(choice in words for choice in ("auto", "online", "offline", "disabled")), wandb


def test_importing_the_cli_loads_neither_torch_nor_pydantic_nor_submitit_nor_wandb():
    heavy = ["torch", "torchvision", "submitit", "wandb", "matplotlib", "pydantic", "lstmgan.config"]
    assert in_fresh_process(watch=heavy) == ([], "", [])


def test_a_commands_help_loads_no_pydantic_either():
    # typer would convert its own unset --help/--install-completion flags through pydantic (0.15 s)
    codes, out, loaded = in_fresh_process(["sweep", "--help"], watch=["pydantic"])
    assert codes == [0] and "Usage: lstmgan sweep" in out and loaded == []


def test_configs_lists_the_packaged_job_files_and_cluster_profiles(cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    r = cli("configs")
    assert r.code == 0
    for name in ("palindrome-sweep", "gan-mnist", "study", "local", "example-gpu"):
        assert name in r.out


def test_no_arguments_prints_the_help_as_a_usage_error(capsys):
    assert main([]) == 2
    out, err = capsys.readouterr()
    assert "Usage: lstmgan" in out and err == ""


def test_h_after_a_list_of_values_still_asks_for_help(cli):
    r = cli("sweep", "--lengths", "5", "10", "-h")
    assert r.code == 0 and "--lengths" in r.out


def test_a_folder_named_like_a_packaged_config_does_not_hide_it(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "study").mkdir()  # e.g. `lstmgan study --out study` ran here before
    (tmp_path / "local").mkdir()
    assert cli("study", "--preset", "quick", "--print-config").code == 0
    r = cli("sweep", "--lengths", "3", "--slurm", "--cluster", "local", "--dry-run", "--out", tmp_path / "runs")
    assert r.code == 0 and "jobs/clusters/local.yaml" in r.out, r.err
