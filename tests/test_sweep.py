"""A sweep runs model × length × seed and summarises from the run directories alone."""

import csv
import json

from conftest import TINY


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
