"""The study report is rebuilt from run folders made by tiny real runs, and its numbers are theirs."""

import json
import statistics

import pytest
import torch
from idx import make_tiny_mnist

TINY_STUDY = """
sweep: {name: palindrome, lengths: [3, 4], models: [rnn, lstm], seeds: [0, 1], epochs: 2, hidden: 16, samples: 200}
ablation: {lengths: [3], models: [rnn, lstm], seeds: [0], inits: [pytorch, normal], encodings: [onehot, scalar],
           epochs: 2, hidden: 16, samples: 200}
gan: {dataset: mnist, epochs: 2, batch_size: 32, eval_every: 1, eval_samples: 100, log_every: 4, sample_every: 8}
interpolation_pairs: 1
presets:
  tiny: {sweep: {seeds: [0]}}
"""


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    from lstmgan.cli.main import main

    root = tmp_path_factory.mktemp("study")
    make_tiny_mnist(root / "data", n_train=256, n_test=128)
    (root / "study.yaml").write_text(TINY_STUDY)
    out = root / "runs"
    assert main(["study", "--config", str(root / "study.yaml"), "--data-dir", str(root / "data"), "--out", str(out),
                 "--wandb", "disabled", "--device", "cpu", "--quiet"]) == 0
    assert main(["report", str(out), "--wandb", "disabled"]) == 0
    return out


def final_accs(folder, pattern):
    return [json.loads(p.read_text())["final_val_acc"] for p in sorted(folder.glob(f"{pattern}/result.json"))]


def table_rows(markdown, first_cell):
    return [line.split(" | ") for line in markdown.splitlines() if line.startswith(f"| {first_cell}")]


def test_part_one_table_matches_the_metrics_files(study):
    md = (study / "report.md").read_text()
    for model in ("rnn", "lstm"):
        for length in (3, 4):
            accs = [json.loads(p.read_text().splitlines()[-1])["val_acc"]  # last epoch in metrics.jsonl
                    for p in sorted((study / "palindrome").glob(f"{model}-L{length}-s*/metrics.jsonl"))]
            assert accs == final_accs(study / "palindrome", f"{model}-L{length}-s*")
            expected = f"{100 * statistics.fmean(accs):.1f} ± {100 * statistics.stdev(accs):.1f} %"
            (row,) = [r for r in table_rows(md, model) if r[1] == str(length)]
            assert row[2] == "2/2" and row[3] == expected and row[4] == "10%"
    assert md.count("At length ") == 2  # a generated sentence per length
    assert (study / "figures" / "palindrome" / "L3.png").exists()


def test_ablation_covers_every_setup_and_its_numbers(study):
    md = (study / "report.md").read_text()
    for model in ("RNN", "LSTM"):
        for init in ("pytorch", "normal"):
            for enc in ("onehot", "scalar"):
                (row,) = table_rows(md, f"{model} · {init} init · {enc}")
                (acc,) = final_accs(study / "ablation", f"{model.lower()}-L3-{init}-{enc}-s0")
                assert row[1].startswith(f"{100 * acc:.1f} % (1/1)")  # one seed: no ± part
    assert (study / "figures" / "ablation.png").stat().st_size > 5000


def test_gan_part_and_header(study):
    md = (study / "report.md").read_text()
    assert "Samples at the start of training" in md and "Samples at the end of training" in md
    metrics = [json.loads(line) for line in (study / "gan" / "mnist-s0" / "metrics.jsonl").read_text().splitlines()]
    for m in (m for m in metrics if "fid" in m):
        assert f"| {m['epoch']} | {m['fid']:.2f} | {m['fid_floor']:.2f} |" in md
    assert torch.__version__ in md  # versions of the runs in the header
    html = (study / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 6  # self-contained: figures embedded


def test_report_works_on_partial_results_and_says_what_is_missing(study, tmp_path, cli):
    import shutil

    partial = tmp_path / "partial"
    shutil.copytree(study / "palindrome", partial / "palindrome")
    (partial / "palindrome" / "rnn-L3-s0" / "result.json").unlink()  # as if still running
    r = cli("report", partial, "--wandb", "disabled")
    assert r.code == 0, r.err
    md = (partial / "report.md").read_text()
    assert "| rnn | 3 | 1/2 |" in md
    assert "No ablation runs found" in md and "No GAN run found" in md


def test_a_preset_overrides_the_top_level_and_unknown_presets_are_errors(tmp_path):
    from lstmgan.errors import UserError
    from lstmgan.experiments import load_study

    path = tmp_path / "s.yaml"
    path.write_text(TINY_STUDY)
    assert load_study(path, "tiny", {}).sweep.seeds == [0]
    assert load_study(path, None, {"sweep.epochs": 7}).sweep.run.epochs == 7
    with pytest.raises(UserError, match="no preset 'huge'"):
        load_study(path, "huge", {})
    with pytest.raises(UserError, match="ambiguous"):
        load_study(path, None, {"epochs": 3})
    assert load_study("jobs/study.yaml", "quick", {}).gan.run.epochs == 15  # the shipped file loads


def test_report_with_wandb_gives_the_study_report_run_its_tables_by_heading_and_its_figures(study, tmp_path, cli):
    import shutil

    copy = tmp_path / "study"
    shutil.copytree(study, copy)
    r = cli("report", copy, "--wandb", "offline")
    assert r.code == 0, r.err
    spec = json.loads((copy / "wandb-report" / "report.json").read_text())
    assert sorted(spec["tables"]) == ["ablation-input-encoding-initialisation-forget-gate-bias",
                                      "part-1-palindromes-vanilla-rnn-vs-lstm", "part-2-gan", "the-gan-over-its-seeds",
                                      "the-original-s-claims-tested", "where-the-numbers-come-from"]
    md = (copy / "report.md").read_text()
    for row in spec["tables"]["part-1-palindromes-vanilla-rnn-vs-lstm"]["rows"]:
        assert "| " + " | ".join(row) + " |" in md  # the very table report.md shows
    assert "figures/ablation.png" in spec["figures"] and all((copy / f).is_file() for f in spec["figures"])
    assert json.loads((copy / "wandb-report" / "wandb-run.json").read_text())["job_type"] == "report"
