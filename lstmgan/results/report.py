"""The study report, rebuilt from run directories alone (it never trains): report.md, report.html, figures/.

Every number and sentence comes from result.json / metrics.jsonl files on disk. Parts whose runs are
missing or unfinished say so instead of being left out silently. The report is a list of blocks
rendered twice: as Markdown, and as one self-contained HTML file (figures embedded). Nothing here calls
W&B: the pipeline publishes the report's named tables and figures (lstmgan.tracking.publish).
"""

from __future__ import annotations

import base64
import html
import json
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lstmgan.errors import UserError
from lstmgan.experiments import ABLATION, GAN
from lstmgan.fs import read_regular, read_text, rows_with, write_text_atomic
from lstmgan.results.markdown import markdown_table
from lstmgan.results.summary import Row, RunRecord, cell, load_runs, mean_std_text, series, summarise
from lstmgan.rundir import RunDir

CHANCE = 0.1  # ten digits
# What a GAN evaluation row must hold as numbers for the report to use it.
GAN_EVAL_NUMBERS = ("epoch", "fid", "fid_floor", "mean_max_prob")


# --- blocks ----------------------------------------------------------------------------------------


@dataclass
class Report:
    folder: Path
    blocks: list[tuple[str, Any]] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)

    def h(self, level: int, text: str) -> None:
        self.blocks.append(("h", (level, text)))

    def p(self, text: str) -> None:
        self.blocks.append(("p", text))

    def table(self, header: list[str], rows: list[list[str]]) -> None:
        self.blocks.append(("table", (header, rows)))

    def image(self, path: Path, caption: str) -> None:
        self.blocks.append(("img", (path, caption)))
        self.figures.append(path)

    def code(self, text: str) -> None:
        self.blocks.append(("code", text))

    @property
    def md_path(self) -> Path:
        return self.folder / "report.md"

    @property
    def html_path(self) -> Path:
        return self.folder / "report.html"

    def named_tables(self) -> dict[str, tuple[list[str], list[list[str]]]]:
        """Every table, named by the heading above it in lower-case words joined by `-` (the W&B report
        run's `tables/<name>`); a second table under one heading gets its position appended."""
        tables: dict[str, tuple[list[str], list[list[str]]]] = {}
        heading = "report"
        for kind, value in self.blocks:
            if kind == "h":
                heading = value[1]
            elif kind == "table":
                name = "".join(c if c.isalnum() else "-" for c in heading.lower()).strip("-")
                while "--" in name:
                    name = name.replace("--", "-")
                tables[name if name not in tables else f"{name}-{len(tables)}"] = value
        return tables

    def markdown(self) -> str:
        out = []
        for kind, value in self.blocks:
            if kind == "h":
                out.append("#" * value[0] + " " + value[1])
            elif kind == "p":
                out.append(value)
            elif kind == "table":
                out.append(markdown_table(*value))
            elif kind == "img":
                out.append(f"![{value[1]}]({value[0].relative_to(self.folder)})\n\n*{value[1]}*")
            elif kind == "code":
                out.append(f"```\n{value}\n```")
            out.append("")
        return "\n".join(out)

    def html(self, title: str) -> str:
        body = []
        for kind, value in self.blocks:
            if kind == "h":
                body.append(f"<h{value[0]}>{html.escape(value[1])}</h{value[0]}>")
            elif kind == "p":
                body.append(f"<p>{html.escape(value)}</p>")
            elif kind == "table":
                header, rows = value
                head = "".join(f"<th>{html.escape(c)}</th>" for c in header)
                cells = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
                body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{cells}</tbody></table>")
            elif kind == "img":
                data = base64.b64encode(read_regular(value[0], "image")).decode()
                body.append(f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(value[1])}">'
                            f"<figcaption>{html.escape(value[1])}</figcaption></figure>")
            elif kind == "code":
                body.append(f"<pre>{html.escape(value)}</pre>")
        style = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
                 "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;"
                 "text-align:left}th{background:#f4f4f4}img{max-width:100%}figcaption{color:#555;font-size:90%}"
                 "pre{background:#f6f6f6;padding:1em;overflow-x:auto;font-size:85%}")
        return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
                f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n")


# --- part 1: the sweep -----------------------------------------------------------------------------


def sentence(length: int, rows: list[Row]) -> str:
    """One sentence per length, generated from the numbers (never a hand-written claim)."""
    parts = []
    for row in rows:
        if not row.finished:
            parts.append(f"the {row.label} has no finished run")
            continue
        mean = statistics.fmean(row.final_val_acc)
        hit = [e for e in row.epoch_to_99 if e is not None]
        reached = (f"reached 99 % validation accuracy in {row.reached}/{row.finished} seeds"
                   + (f" (first at epoch {statistics.fmean(hit):.0f} on average)" if hit else ""))
        level = ("near chance" if mean < 2 * CHANCE else "well below 99 %" if mean < 0.9 else
                 "below 99 %" if mean < 0.99 else "at or above 99 %")
        parts.append(f"the {row.label} {reached} and ended at {row.acc_text()} ({level})")
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
    varied = list(rows[0].settings)  # a grid's keys: a column each
    report.table(["model", "length", *varied, "runs finished", "final val acc (mean ± std)", "chance",
                  "epochs to 99 % (mean)", "seeds reaching 99 %"],
                 [[r.model, str(r.length), *map(cell, r.settings.values()), f"{r.finished}/{r.total}", r.acc_text(),
                   f"{CHANCE:.0%}",
                   (f"{statistics.fmean([e for e in r.epoch_to_99 if e is not None]):.0f}" if r.reached else "never"),
                   f"{r.reached}/{r.finished}"] for r in rows])
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

    report.h(2, "Ablation — initialisation × input encoding")
    if not records:
        report.p("No ablation runs found (expected under ablation/).")
        return
    cells: dict[tuple[str, str, str], dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    expected: dict[tuple[str, str, str], dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for rec in records:
        key = (rec.config.model, rec.config.init, rec.config.encoding)
        expected[key][rec.config.length] += 1
        if rec.result is not None:
            cells[key][rec.config.length].append(rec.result["final_val_acc"])
    lengths = sorted({rec.config.length for rec in records})
    keys = sorted(expected, key=lambda k: (k[0] != "rnn", k[1], k[2]))
    label = {k: f"{k[0].upper()} · {k[1]} init · {k[2]}" for k in keys}
    init_std = sorted({rec.config.init_std for rec in records if rec.config.init == "normal"})
    report.p("Mean final validation accuracy over seeds for each set-up. Initialisations: pytorch = "
             "U(±1/√H) for every parameter; normal = N(0, σ²) weights with σ = "
             f"{', '.join(map(str, init_std)) or '–'} and zero biases. Encodings: onehot = 10 inputs, "
             "scalar = the digit as one input.")
    rows = []
    for k in keys:
        rows.append([label[k], *[f"{mean_std_text(cells[k][n], pct=True)} ({len(cells[k][n])}/{expected[k][n]})"
                                 for n in lengths]])
    report.table(["set-up", *[f"L = {n}" for n in lengths]], rows)
    matrix = [[statistics.fmean(cells[k][n]) if cells[k][n] else float("nan") for n in lengths] for k in keys]
    path = heatmap(matrix, [label[k] for k in keys], [f"L={n}" for n in lengths], figures / "ablation.png",
                   "Final validation accuracy (mean over seeds)")
    report.image(path, "Ablation heat map: rows are set-ups, columns are lengths; 0.1 is chance")
    fails = [f"{label[k]} at L = {n}" for k in keys for n in lengths
             if cells[k][n] and statistics.fmean(cells[k][n]) < 0.5]
    report.p("Set-ups below 50 % mean final accuracy: " + ("; ".join(fails) if fails else "none") + ".")


# --- part 2: the GAN -------------------------------------------------------------------------------


def part_gan(report: Report, gan_root: Path, figures: Path) -> None:
    from lstmgan.results.plots import class_histogram_figure, fid_curve

    report.h(2, "Part 2 — GAN")
    runs = sorted(p.parent for p in gan_root.glob("*/config.yaml"))
    if not runs:
        report.p("No GAN run found (expected under gan/).")
        return
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
    try:
        value = json.loads(read_text(png.with_name(png.stem.rsplit("-", 1)[0] + ".json"), "result"))["min_confidence"]
    except (OSError, ValueError, KeyError, TypeError):
        return ""
    return f"; both ends read as their class with confidence ≥ {value}" if isinstance(value, (int, float)) else ""


# --- header and entry point ------------------------------------------------------------------------


def header(report: Report, all_runs: list[Path]) -> None:
    envs = [r["env"] for r in (RunDir(p).result() for p in all_runs) if r and isinstance(r.get("env"), dict)]
    report.h(1, f"Study report — {report.folder.name}")
    report.p(f"Rebuilt from {len(all_runs)} run folders under {report.folder}; "
             f"{len(envs)} finished runs recorded their environment.")
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
        report.p(f"{name}: {len(runs)} runs. Settings shared by all of them:")
        report.code(yaml.safe_dump(fixed, sort_keys=True).strip())
        swept = {k: [json.loads(v) for v in vs] for k, vs in varying.items() if len(vs) > 1}
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
    gan_runs = sorted(p.parent for p in (folder / GAN).glob("*/config.yaml"))
    header(report, [r.path for r in sweep_records + ablation_records] + gan_runs)
    if skipped:
        report.p(f"Skipped {len(skipped)} damaged run(s): " + "; ".join(
            f"{path.relative_to(folder)} ({why})" for path, why in skipped) + ".")
    part_sweep(report, sweep_records, figures)
    part_ablation(report, ablation_records, figures)
    part_gan(report, folder / GAN, figures)
    config_section(report, {"Palindrome sweep": [r.path for r in sweep_records],
                             "Ablation": [r.path for r in ablation_records], "GAN": gan_runs})
    write_text_atomic(report.md_path, report.markdown())
    write_text_atomic(report.html_path, report.html(f"lstmgan study report — {folder.name}"))
    return report
