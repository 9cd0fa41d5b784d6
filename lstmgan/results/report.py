"""The study report, rebuilt from run directories alone (it never trains): report.md, report.html, figures/.

It opens with the original's claims, tested (lstmgan.results.claims: the verdicts, the ablation's ranking
of factors, the memory horizon, the GAN's claims), then the sweep, the ablation and the GAN in detail.
Every number and sentence comes from result.json / metrics.jsonl files on disk. Parts whose runs are
missing or unfinished say so instead of being left out silently. The report is a list of blocks rendered
twice (lstmgan.results.document): as Markdown, and as one self-contained HTML file. Nothing here calls W&B:
the pipeline publishes the report's named tables and figures (lstmgan.tracking.publish).
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

import yaml

from lstmgan.errors import UserError
from lstmgan.fs import read_json_object, write_text_atomic
from lstmgan.results import ablation as ab
from lstmgan.results import claims as c
from lstmgan.results.document import Report
from lstmgan.results.markdown import acc_text, mean_std_text, pct
from lstmgan.results.summary import Row, RunRecord, load_runs, run_folders, series, summarise, table_header
from lstmgan.rundir import ABLATION, GAN, RunDir, is_number, rows_with
from lstmgan.words import plural

CHANCE = 0.1  # ten digits
# What a GAN evaluation row must hold as numbers for the report to use it.
GAN_EVAL_NUMBERS = ("epoch", "fid", "fid_floor", "mean_max_prob")


# --- the original's claims, tested -----------------------------------------------------------------


def rule_text() -> list[str]:
    """The verdict rule of claims.verdicts in words, one line per claim kind, with the constants' values."""
    reach, nearly = pct(c.REACH_SHARE), pct(c.NEARLY)
    return [
        f"A seed reaches 99 % when its validation accuracy was ≥ {pct(c.TARGET)} at some epoch; mean = the mean "
        "final validation accuracy over seeds; median epoch = the median epoch to 99 % (never, when more than "
        "half the seeds never got there).",
        f"100 % / perfect accuracy: holds when ≥ {reach} of the seeds reach 99 %; partly when the mean is ≥ "
        f"{nearly} or some seed reaches 99 %; else does not hold.",
        f"Converges at about epoch E, 100 %: holds when ≥ {reach} of the seeds reach 99 % and the median epoch is "
        f"≤ {c.EPOCH_SLACK:g} E; partly when it converges later, the mean is ≥ {nearly} or some seed reaches "
        "99 %; else does not hold.",
        f"Still rising at epoch 100, nearly 100 %: holds when fewer than half the seeds reach 99 % by epoch 100 "
        f"and the mean is ≥ {nearly}; partly when the mean is lower, or when most converge late (median epoch "
        f"≥ {c.LATE * c.ORIGINAL_EPOCHS:g}); does not hold when most converge earlier.",
        f"About p: holds within {100 * c.ABOUT_BAND:g} points of p, partly within {100 * c.ABOUT_PARTLY_BAND:g}.",
        f"Performs very badly: holds when the mean is ≤ {pct(c.VERY_BAD)} (chance {pct(c.CHANCE)}); partly "
        f"below {nearly}; does not hold when it solves the task.",
        f"Converges faster: the median epochs to 99 % of both models; within ±{pct(c.FASTER_MARGIN)} is a tie "
        "(partly); never reaching 99 % does not hold.",
        f"GAN samples look like digits: three signs from the classifier — classifier-FID ≤ {c.FID_RATIO:g} × the "
        f"real-vs-real floor (means over seeds), every seed covers every class (≥ {pct(c.COVERAGE)} of its "
        f"uniform share), mean max-probability ≥ {c.CONFIDENT}; holds with three, partly with two.",
        f"Interpolation steps are good digits: the inner frames of strips between two different classes, read "
        f"with confidence ≥ {c.CONFIDENT}; holds when all are, partly when ≥ {pct(c.STRIP_PARTLY)} are.",
        f"A verdict marked \"quick:\" comes from runs shorter than the original's {c.ORIGINAL_EPOCHS} (GAN: "
        f"{c.GAN_EPOCHS}) epochs: too few to judge a claim about convergence, whichever way it came out.",
        "A GAN verdict marked \"other data:\" comes from a GAN trained on another dataset than the original's "
        "MNIST (e.g. Fashion-MNIST): the same rule, applied to other images, checks the pipeline, not the claim."]


def part_claims(report: Report, sweep: list[RunRecord], ablation: list[RunRecord], gan_runs: list[Path],
                figures: Path) -> None:
    """The claims table (verdicts from the rule), which ablation factor moves the long lengths, the memory
    horizon and the GAN's claims over its seeds."""
    from lstmgan.results.horizon import horizon_figure

    report.h(2, "The original's claims, tested")
    gan = c.gan_measured([r for p in gan_runs if (r := RunDir(p).result())], strip_files(gan_runs))
    rows = c.verdicts(c.measurements(sweep), gan)
    report.p(f"One row per claim of the original study; the palindrome rows from the sweep ({len(sweep)} runs), "
             f"the GAN rows from {plural(len(gan_runs), 'GAN run')}. The verdicts follow this rule:")
    report.p("\n".join(f"- {line}" for line in rule_text()))
    if any(row.quick for row in rows):
        report.p("Some verdicts are marked quick: their runs trained fewer epochs than the original's.")
    report.table(c.HEADERS, [row.cells() for row in rows])
    report.h(3, "What moves the long lengths: the ablation")
    ranked = ab.rank_factors(ab.ablation_runs(ablation))
    if not ranked:
        report.p(f"No finished ablation runs at lengths {', '.join(map(str, ab.LONG_LENGTHS))} with a factor "
                 "that took more than one value.")
    for model, effects in ranked.items():
        lengths = ", ".join(map(str, sorted({n for e in effects for n in e.lengths})))
        report.p(f"{model.upper()} at L = {lengths}: " + "; ".join(e.text() for e in effects) + ". Largest first: "
                 "at each length, the spread of the mean final validation accuracy over the factor's values (the "
                 "other factors and the seeds averaged over), averaged over the lengths.")
    report.h(3, "The memory horizon")
    path = horizon_figure(sweep, figures / "horizon.png")
    if path is None:
        report.p("No run recorded the gradient norms at the first step (runs trained before they were measured).")
    else:
        report.image(path, "How much of the loss's gradient reaches the first step (∂ℓ/∂h₁, ∂ℓ/∂x₁, and h₁'s "
                     "share of the gradient at the last step), per model and length: the vanishing gradient the "
                     "original blames")
    if gan is not None:
        report.h(3, "The GAN over its seeds")
        report.table(["seeds", "classifier-FID", "real-vs-real floor", "mean max-prob", "epochs"],
                     [[str(len(gan.fid)), mean_std_text(gan.fid, "{:.2f}"), mean_std_text(gan.fid_floor, "{:.2f}"),
                       mean_std_text(gan.mean_max_prob, "{:.3f}"), str(gan.epochs)]])


def strip_files(gan_runs: list[Path]) -> list[dict[str, Any]]:
    """The interpolation/<method>.json files of the GAN runs (unreadable ones left out)."""
    files = (read_json_object(f) for run in gan_runs for f in sorted((run / "interpolation").glob("*.json")))
    return [data for data in files if data is not None]


# --- part 1: the sweep -----------------------------------------------------------------------------


def sentence(length: int, rows: list[Row]) -> str:
    """One sentence per length, generated from the numbers (never a hand-written claim)."""
    parts = []
    for row in rows:
        if not row.finished:
            parts.append(f"the {row.label} has no finished run")
            continue
        mean = statistics.fmean(row.final_val_acc)
        reached = (f"reached 99 % validation accuracy in {row.reached}/{row.finished} seeds"
                   + (f" (first at epoch {row.mean_epoch_text()} on average)" if row.hit else ""))
        level = ("near chance" if mean < 2 * CHANCE else "well below 99 %" if mean < 0.9 else
                 "below 99 %" if mean < 0.99 else "at or above 99 %")
        parts.append(f"the {row.label} {reached} and ended at {acc_text(row.final_val_acc)} ({level})")
    return f"At length {length}, " + "; ".join(parts) + "."


def part_sweep(report: Report, records: list[RunRecord], figures: Path) -> None:
    from lstmgan.results.plots import curves_by_length

    report.h(2, "Part 1 — Palindromes: vanilla RNN vs LSTM")
    if not records:
        report.p("No palindrome runs found (expected under palindrome/). Run `lstmgan study` first.")
        return
    rows = summarise(records)
    report.p(f"Final validation accuracy over seeds (chance level {CHANCE:.0%}); "
             f"{sum(r.finished for r in rows)} of {sum(r.total for r in rows)} runs finished.")
    report.table(table_header(rows, ("chance", "epochs to 99 % (mean)", "seeds reaching 99 %")),
                 [[*r.cells(), f"{CHANCE:.0%}", r.mean_epoch_text(), f"{r.reached}/{r.finished}"] for r in rows])
    paths = {int(p.stem[1:]): p for p in curves_by_length(records, figures / "palindrome", series(records))}
    by_length: dict[int, list[Row]] = defaultdict(list)
    for row in rows:
        by_length[row.length].append(row)
    for length in sorted(by_length):
        report.h(3, f"Length {length}")
        report.p(sentence(length, by_length[length]))
        if length in paths:
            report.image(paths[length], f"Length {length}: accuracy and loss, mean ± std over seeds")


# --- ablation --------------------------------------------------------------------------------------


def part_ablation(report: Report, records: list[RunRecord], figures: Path) -> None:
    from lstmgan.results.plots import heatmap

    report.h(2, "Ablation — input encoding × initialisation × forget-gate bias")
    if not records:
        report.p("No ablation runs found (expected under ablation/).")
        return
    cells: dict[tuple[Any, ...], dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    expected: dict[tuple[Any, ...], dict[int, int]] = defaultdict(lambda: defaultdict(int))
    biases = len({rec.config.forget_bias for rec in records if rec.config.model == "lstm"}) > 1
    for rec in records:
        key = (rec.config.model, rec.config.init, rec.config.encoding, rec.config.forget_bias)
        expected[key][rec.config.length] += 1
        if rec.result is not None:
            cells[key][rec.config.length].append(rec.result["final_val_acc"])
    lengths = sorted({rec.config.length for rec in records})
    keys = sorted(expected, key=lambda k: (k[0] != "rnn", *k[1:]))
    label = {k: f"{k[0].upper()} · {k[1]} init · {k[2]}" + (f" · forget bias {k[3]:g}" if biases and k[0] == "lstm"
                                                            else "") for k in keys}
    init_std = sorted({rec.config.init_std for rec in records if rec.config.init == "normal"})
    report.p("Mean final validation accuracy over seeds for each set-up. Initialisations: pytorch = "
             "U(±1/√H) for every parameter; normal = N(0, σ²) weights with σ = "
             f"{', '.join(map(str, init_std)) or '–'} and zero biases. Encodings: onehot = 10 inputs, "
             "scalar = the digit as one input (the original's). Forget-gate bias: the LSTM's only (0 = the "
             "original's).")
    report.table(["set-up", *[f"L = {n}" for n in lengths]],
                 [[label[k], *[f"{acc_text(cells[k][n])} ({len(cells[k][n])}/{expected[k][n]})" for n in lengths]]
                  for k in keys])
    matrix = [[statistics.fmean(cells[k][n]) if cells[k][n] else float("nan") for n in lengths] for k in keys]
    path = heatmap(matrix, [label[k] for k in keys], [f"L={n}" for n in lengths], figures / "ablation.png",
                   "Final validation accuracy (mean over seeds)")
    report.image(path, "Ablation heat map: rows are set-ups, columns are lengths; 0.1 is chance")
    fails = [f"{label[k]} at L = {n}" for k in keys for n in lengths
             if cells[k][n] and statistics.fmean(cells[k][n]) < 0.5]
    report.p("Set-ups below 50 % mean final accuracy: " + ("; ".join(fails) if fails else "none") + ".")


# --- part 2: the GAN -------------------------------------------------------------------------------


def part_gan(report: Report, runs: list[Path], figures: Path) -> None:
    from lstmgan.results.plots import class_histogram_figure, fid_curve

    report.h(2, "Part 2 — GAN")
    if not runs:
        report.p("No GAN run found (expected under gan/).")
        return
    if len(runs) > 1:
        finals = [(p.name, RunDir(p).result() or {}) for p in runs]
        report.p(f"{len(runs)} GAN runs; their final numbers (mean ± std: \"The GAN over its seeds\" above). "
                 f"The figures below are of {runs[0].name}.")
        report.table(["run", "epochs", "classifier-FID", "real-vs-real floor", "mean max-prob"],
                     [[name, *(f"{r[k]:g}" if isinstance(r.get(k), (int, float)) else "–"
                               for k in ("epochs", "fid", "fid_floor", "mean_max_prob"))] for name, r in finals])
    run = RunDir(runs[0])
    result = run.result()
    metrics = run.metrics()
    cfg = run.config_or_reason()[0] or {}
    reached = max((m["epoch"] for m in rows_with(metrics, ("epoch",))), default=0)
    state = "finished" if result else f"unfinished (reached epoch {reached} of {cfg.get('epochs')})"
    report.p(f"Run {run.path.name}: {cfg.get('dataset')}, {cfg.get('epochs')} epochs, batch {cfg.get('batch_size')}, "
             f"Adam lr {cfg.get('lr')}, latent {cfg.get('latent_dim')} — {state}.")
    grids = sorted((run.path / "samples").glob("step*.png"))
    picks = {"start": 0, "middle": len(grids) // 2, "end": len(grids) - 1} if len(grids) >= 3 else \
        {"start": 0, "end": len(grids) - 1} if len(grids) == 2 else {"start": 0} if grids else {}
    for when, index in picks.items():
        path = grids[index]
        report.image(path, f"Samples at the {when} of training ({path.stem}), one fixed z for all grids")
    if (run.path / "losses.png").exists():
        report.image(run.path / "losses.png", "Losses and discriminator outputs over training")
    evals = [m for m in rows_with(metrics, GAN_EVAL_NUMBERS) if isinstance(m.get("class_histogram"), list)]
    if evals:
        last = evals[-1]
        report.table(["epoch", "classifier-FID", "real-vs-real floor", "mean max-prob"],
                     [[str(m["epoch"]), f"{m['fid']:.2f}", f"{m['fid_floor']:.2f}", f"{m['mean_max_prob']:.3f}"]
                      for m in evals])
        report.image(fid_curve(evals, figures / "gan-fid.png"),
                     "Classifier-FID over epochs, with the real-vs-real floor")
        report.image(class_histogram_figure(last["class_histogram"], figures / "gan-classes.png"),
                     f"Classes of {sum(last['class_histogram'])} generated samples at epoch {last['epoch']}")
    else:
        report.p("No classifier-FID evaluation recorded yet.")
    strips = sorted((run.path / "interpolation").glob("*.png"))
    for path in strips:
        report.image(path, f"Latent interpolation ({path.stem}): predicted class (confidence) under each image"
                     + strip_rule(path))
    if not strips:
        report.p("No interpolation strip yet: run `lstmgan interpolate " + str(run.path) + "`.")


def strip_rule(png: Path) -> str:
    """The confidence both ends of a strip needed, from the JSON written beside it ('' when unreadable)."""
    value = (read_json_object(png.with_name(png.stem.rsplit("-", 1)[0] + ".json")) or {}).get("min_confidence")
    return f"; both ends read as their class with confidence ≥ {value}" if isinstance(value, (int, float)) else ""


# --- header and entry point ------------------------------------------------------------------------


def header(report: Report, all_runs: list[Path], skipped: list[tuple[Path, str]]) -> None:
    envs = [r["env"] for r in (RunDir(p).result() for p in all_runs) if r and isinstance(r.get("env"), dict)]
    report.h(2, "Where the numbers come from")
    report.p(f"Rebuilt from {len(all_runs)} run folders under {report.folder}; "
             f"{len(envs)} finished runs recorded their environment.")
    if skipped:
        report.p(f"Skipped {plural(len(skipped), 'damaged run')}: " + "; ".join(
            f"{path.relative_to(report.folder)} ({why})" for path, why in skipped) + ".")
    if envs:
        keys = ["lstmgan", "git_revision", "python", "torch", "cuda", "device", "gpu", "cpu", "cpu_count", "host"]
        report.table(["", "values seen in the runs"],
                     [[k, ", ".join(sorted({str(e.get(k)) for e in envs if e.get(k) is not None})) or "–"]
                      for k in keys])


def config_section(report: Report, groups: dict[str, list[Path]]) -> None:
    report.h(2, "Configurations")
    for name, runs in groups.items():
        configs = [RunDir(p).config_or_reason()[0] or {} for p in runs]
        if not configs:
            continue
        keys = sorted({k for c in configs for k in c})
        varying = {k: sorted({json.dumps(c.get(k)) for c in configs}) for k in keys}
        fixed = {k: configs[0].get(k) for k in keys if len(varying[k]) == 1}
        report.p(f"{name}: {plural(len(runs), 'run')}. Settings shared by all of them:")
        report.code(yaml.safe_dump(fixed, sort_keys=True).strip())
        swept = {k: sorted((json.loads(v) for v in vs), key=_number_first) for k, vs in varying.items() if len(vs) > 1}
        if swept:
            report.p("Varied across runs: " + "; ".join(f"{k} ∈ {v}" for k, v in swept.items()) + ".")


def build_report(folder: Path) -> Report:
    """Write report.md and report.html (+ figures/) for the study in `folder`; return the report (its
    paths, named tables and figures). `folder` is a study or sweep folder, never a single run's (a report
    must not write into a run)."""
    if (folder / "config.yaml").exists() or (folder / "checkpoint.pt").exists():
        raise UserError(f"{folder} is a run folder; give the study or sweep folder that holds it, e.g. "
                        f"{folder.parent}")
    figures = folder / "figures"
    skipped: list[tuple[Path, str]] = []
    # The sweep: any folder of palindrome runs beside ablation/ and gan/ (or `folder` itself, a plain sweep).
    sweep_records = load_runs(folder, skipped) + [r for d in sorted(folder.iterdir()) if d.is_dir() and
                                                     d.name not in (ABLATION, GAN) for r in load_runs(d, skipped)]
    ablation_records = load_runs(folder / ABLATION, skipped)
    report = Report(folder)
    gan_runs = run_folders(folder / GAN)
    report.h(1, f"Study report — {folder.name}")
    part_claims(report, sweep_records, ablation_records, gan_runs, figures)
    header(report, [r.path for r in sweep_records + ablation_records] + gan_runs, skipped)
    part_sweep(report, sweep_records, figures)
    part_ablation(report, ablation_records, figures)
    part_gan(report, gan_runs, figures)
    config_section(report, {"Palindrome sweep": [r.path for r in sweep_records],
                             "Ablation": [r.path for r in ablation_records], "GAN": gan_runs})
    write_text_atomic(report.md_path, report.markdown())
    write_text_atomic(report.html_path, report.html(f"lstmgan study report — {folder.name}"))
    return report


def _number_first(value: Any) -> tuple[int, Any]:
    """Sort key: numbers as numbers (5 before 10), then everything else as text."""
    return (0, value) if is_number(value) else (1, str(value))
