"""A sweep runs model × length × seed (× a grid) and summarises from the run directories alone."""

import csv
import json
from pathlib import Path

import pytest
import yaml
from conftest import TINY

from lstmgan.results.summary import load_runs, write_summary


def test_a_sweep_writes_runs_summary_and_figures_that_agree_with_the_results(cli, tmp_path):
    r = cli("sweep", "--lengths", "3,4", "--models", "rnn", "lstm", "--seeds", "0", "1", "--epochs", "2",
            "--name", "tiny", "--out", tmp_path, *TINY)
    assert r.code == 0, r.err
    sweep = tmp_path / "tiny"
    runs = sorted(p.name for p in sweep.iterdir() if (p / "result.json").exists())
    assert runs == sorted(f"{m}-L{n}-s{s}" for m in ("rnn", "lstm") for n in (3, 4) for s in (0, 1))
    assert (sweep / "figures" / "L3.png").stat().st_size > 10_000
    assert (sweep / "figures" / "L4.png").exists()
    rows = {(row["model"], int(row["length"])): row for row in csv.DictReader(open(sweep / "summary.csv"))}
    for (model, length), row in rows.items():
        accs = [json.loads((sweep / f"{model}-L{length}-s{s}" / "result.json").read_text())["final_val_acc"]
                for s in (0, 1)]
        assert float(row["val_acc_mean"]) == round(sum(accs) / 2, 4)
        assert row["finished"] == "2"
    assert "| lstm | 4 | 2/2 |" in (sweep / "summary.md").read_text()
    assert "final val acc" in r.out  # the table is printed at the end


def test_a_grid_adds_runs_named_by_their_values_and_a_summary_column_per_key(cli, tmp_path):
    r = cli("sweep", "--lengths", "3", "--models", "rnn", "lstm", "--seeds", "0", "1", "--epochs", "2",
            "--set", "grid={hidden: [8, 16], lr: [1e-3, 3e-3]}", "--name", "grid", "--out", tmp_path, *TINY)
    assert r.code == 0, r.err
    sweep = tmp_path / "grid"
    names = sorted(p.name for p in sweep.iterdir() if (p / "result.json").exists())
    assert names == sorted(f"{m}-L3-hidden{h}-lr{lr}-s{s}" for m in ("rnn", "lstm") for h in (8, 16)
                           for lr in ("0.001", "0.003") for s in (0, 1))
    stored = yaml.safe_load((sweep / "lstm-L3-hidden16-lr0.003-s1" / "config.yaml").read_text())
    assert (stored["hidden"], stored["lr"], stored["seed"]) == (16, 0.003, 1)
    rows = list(csv.DictReader(open(sweep / "summary.csv")))
    assert list(rows[0])[:4] == ["model", "length", "hidden", "lr"]
    assert len(rows) == 2 * 2 * 2  # model × length × grid point; seeds are averaged
    row = next(r for r in rows if (r["model"], r["hidden"], r["lr"]) == ("lstm", "16", "0.003"))
    accs = [json.loads((sweep / f"lstm-L3-hidden16-lr0.003-s{s}" / "result.json").read_text())["final_val_acc"]
            for s in (0, 1)]
    assert float(row["val_acc_mean"]) == round(sum(accs) / 2, 4) and row["finished"] == "2"
    md = (sweep / "summary.md").read_text()
    assert "| model | length | hidden | lr | runs finished |" in md and "| lstm | 3 | 16 | 0.003 | 2/2 |" in md
    assert (sweep / "figures" / "L3.png").stat().st_size > 10_000  # one line per model × grid point


def test_each_run_records_its_kind_and_the_summary_reads_by_kind(cli, tmp_path):
    r = cli("sweep", "--lengths", "3", "--models", "rnn", "--seeds", "0", "1", "--epochs", "1", "--name", "s",
            "--jobs", "1", "--out", tmp_path, *TINY)
    assert r.code == 0, r.err
    sweep = tmp_path / "s"
    stored = yaml.safe_load((sweep / "rnn-L3-s0" / "config.yaml").read_text())
    assert list(stored)[:2] == ["kind", "format"] and (stored["kind"], stored["format"]) == ("palindrome", 1)

    # A folder written before `kind` existed still reads, and reruns as the same run (no --force needed).
    old = sweep / "rnn-L3-s1" / "config.yaml"
    old.write_text(yaml.safe_dump({k: v for k, v in yaml.safe_load(old.read_text()).items()
                                   if k not in ("kind", "format")}, sort_keys=False))
    assert [rec.path.name for rec in load_runs(sweep)] == ["rnn-L3-s0", "rnn-L3-s1"]
    r = cli("sweep", "--lengths", "3", "--models", "rnn", "--seeds", "0", "1", "--epochs", "1", "--name", "s",
            "--jobs", "1", "--out", tmp_path, *TINY)
    assert r.code == 0, r.err

    # Another kind beside the runs is passed over; damaged palindrome runs are named with the reason.
    (sweep / "gan-run").mkdir()
    (sweep / "gan-run" / "config.yaml").write_text("kind: gan\nformat: 1\ndataset: mnist\n")
    (sweep / "rnn-L3-s1" / "result.json").write_text('{"final_val_acc": null}')
    (sweep / "bad").mkdir()
    (sweep / "bad" / "config.yaml").write_text("kind: palindrome\nhidden: lots\n")
    skipped: list[tuple[Path, str]] = []
    records = load_runs(sweep, skipped)
    assert [(rec.path.name, rec.result is not None) for rec in records] == [("rnn-L3-s0", True), ("rnn-L3-s1", False)]
    assert [(path.name, why) for path, why in skipped] == [
        ("bad", str(sweep / "bad" / "config.yaml") + ": hidden must be an integer, got 'lots'"),
        ("rnn-L3-s1", "result.json has no number for final_val_acc; counted as unfinished")]
    assert "| rnn | 3 | 1/2 |" in (write_summary(sweep, records) and (sweep / "summary.md").read_text())


@pytest.mark.parametrize("args, message", [
    (["--epochs", "0"], "lstmgan: error: epochs must be at least 1, got 0"),
    (["--seeds", "0", "-1"], "lstmgan: error: seed must be at least 0, got -1"),
    (["--set", "model=rnn"], "lstmgan: error: --set model=rnn is refused under sweep: model is set with --models"),
    (["--set", "grid={model: [rnn]}"], "lstmgan: error: grid: model cannot be a grid key"),
    (["--set", "grid={hidden: [16, 0x10]}"], "lstmgan: error: grid hidden lists 16 twice"),
    (["--config", "{binary}"], "lstmgan: error: config {binary} is not a UTF-8 text file; give a YAML file"),
    (["--config", "{folder}"], "lstmgan: error: config {folder} is a folder; give a YAML file"),
])
def test_bad_sweep_input_is_one_line_exit_2_and_writes_nothing(cli, tmp_path, args, message):
    binary = tmp_path / "sweep.yaml"
    binary.write_bytes(bytes(range(256)))
    fill = lambda text: text.replace("{binary}", str(binary)).replace("{folder}", str(tmp_path))
    r = cli("sweep", "--lengths", "3", *map(fill, args), "--out", tmp_path / "out", *TINY)
    assert r.code == 2
    assert r.err.startswith(fill(message)) and r.err.count("\n") == 1
    assert not (tmp_path / "out").exists()
