"""`lstmgan sync`: replay run folders into W&B, each into its one W&B run, sending only what W&B lacks.

The run folder is the truth (config.yaml, metrics.jsonl, samples/, interpolation/, result.json). For each
run folder under the given one, sync compares it with <run>/wandb-sync.json (what W&B holds: the last
step, and files by hash) and builds a *plan*: the rows after that step, the images that are new or
changed, the final summary, a checkpoint artifact when asked for. The plan is replayed into a fresh
offline W&B run with the folder's id (<run>/wandb-sync/), which `wandb sync` uploads: the first time as a
new run, later with resume="allow" stored in it, so W&B continues the run from the server's history offset
(W&B's run resume, which `wandb sync` applies to the stored run record); only after the upload succeeded
is wandb-sync.json updated. So a second sync sends
nothing, a continued run sends only its new steps, a strip made later reaches the GAN's own run, and a
failed or hung upload records nothing (the next sync sends the same plan again).

Why replay rather than upload W&B's own offline files: a resumed or requeued run leaves several offline
files with one id whose steps overlap, and post-hoc work would add a record with an empty config;
`wandb sync` of such files replaces or duplicates history. A replay has exactly one copy of every step.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lstmgan.config import TrackingConfig, run_kind
from lstmgan.errors import UserError, first_line
from lstmgan.fs import read_json_object, read_text, write_json_atomic
from lstmgan.rundir import RunDir
from lstmgan.tracking.identity import (
    GROUP_FILE,
    IDENTITY_FILE,
    SYNC_FILE,
    group_id,
    identity,
    identity_record,
    run_id,
    sync_record,
    write_once,
)
from lstmgan.tracking.tracker import (
    file_hash,
    has_credentials,
    init_run,
    json_hash,
    log_checkpoint,
    summary_digest,
    summary_values,
    wandb_row,
    wandb_settings,
)
from lstmgan.words import plural

REPORT_DIR = "wandb-report"  # a sweep's or study's report run: report.json (tables, figures) + identity
REPLAY_DIR = "wandb-sync"  # the offline run a sync builds and uploads (kept until the next sync)
SKIP_DIRS = {"wandb", REPLAY_DIR, "submitit", "figures", "samples", "interpolation", "classifiers"}
TIMEOUT_ENV = "LSTMGAN_WANDB_SYNC_TIMEOUT"  # seconds one `wandb sync` may take (default 600)


@dataclass
class Plan:
    """What one sync sends to one W&B run, in this order: rows and images by step, tables, summary,
    artifact."""

    run: Path
    ident: dict[str, Any]
    rows: list[dict[str, Any]] = field(default_factory=list)
    images: list[tuple[int, str, list[Path]]] = field(default_factory=list)  # step, key, files
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    artifact: Path | None = None
    files: dict[str, str] = field(default_factory=dict)  # what the record holds once this is uploaded
    last_step: int | None = None
    resume: bool = False  # W&B already holds this run: continue it (else create it)

    @property
    def empty(self) -> bool:
        return not (self.rows or self.images or self.tables or self.summary or self.artifact)

    def target(self) -> str:
        i = self.ident
        return f"{i.get('entity') or '(default entity)'}/{i.get('project')}/{i['id']}"

    def describe(self) -> list[str]:
        """Exactly what would be uploaded, in upload order."""
        if self.empty:
            return [f"{self.run}: up to date in W&B run {self.target()}; nothing to upload"]
        i = self.ident
        lines = [f"{self.run} → W&B run {self.target()} (group {i.get('group')}, job_type {i.get('job_type')}, "
                 f"name {i.get('name')}; {'continues it' if self.resume else 'creates it'})"]
        step_key = i["step_key"]
        if self.rows:
            steps = [r[step_key] for r in self.rows]
            lines.append(f"  {len(self.rows)} metric rows, {step_key} {min(steps)}–{max(steps)}")
        for step, key, paths in self.images:
            lines.append(f"  image {key} at {step_key} {step}: " + ", ".join(str(p.relative_to(self.base))
                                                                          for p in paths))
        for name in self.tables:
            lines.append(f"  table tables/{name}")
        if self.summary:
            lines.append(f"  summary: {len(self.summary)} final values from result.json")
        if self.artifact:
            lines.append(f"  artifact checkpoint-{i['id']} ({self.artifact.name})")
        return lines

    @property
    def base(self) -> Path:
        """Paths in a report plan are relative to the sweep/study folder, elsewhere to the run folder."""
        return self.run.parent if self.run.name == REPORT_DIR else self.run


# --- finding runs and their identity -----------------------------------------------------------------


def run_folders(folder: Path) -> list[Path]:
    """The run folders `folder` stands for: itself, or those of a sweep (*/) or a study (*/*/), and the
    report run of each; in path order (the order sync uploads them)."""
    if _is_run(folder):
        return [folder]
    found: set[Path] = set()
    for depth in ("*", "*/*", "*/*/*"):
        for path in folder.glob(depth):
            rel = path.relative_to(folder).parts
            if path.is_dir() and not SKIP_DIRS.intersection(rel) and _is_run(path):
                found.add(path)
    return sorted(found)


def _is_run(path: Path) -> bool:
    return (path / "config.yaml").is_file() or (path / IDENTITY_FILE).is_file()


def _identity(run: Path, root: Path, *, create: bool) -> dict[str, Any]:
    """The identity the tracker recorded; for a folder trained before it recorded one, a reconstruction
    from config.yaml (group of the folder sync was given, or of the run's parent)."""
    ident = identity(run)
    if ident.get("id"):
        ident.setdefault("step_key", "step" if ident.get("job_type") == "gan" else "epoch")
        return ident
    config = RunDir(run).config_or_reason()[0] or {}
    kind = run_kind(config) or ("gan" if "dataset" in config else "palindrome")
    tags = ["gan", str(config.get("dataset"))] if kind == "gan" else [str(config.get("model")),
                                                                      f"L{config.get('length')}"]
    group_folder = root if root != run else run.parent
    if create:
        group = group_id(group_folder)
        write_once(group_folder / GROUP_FILE, group)  # the next sync (another process) finds the same group
    else:
        group = (read_text(group_folder / GROUP_FILE, "id").strip() if (group_folder / GROUP_FILE).exists()
                 else f"{group_folder.name}-(new)")
    tracking = TrackingConfig(group=group, job_type=kind, tags=tuple(tags))  # the default project
    return identity_record(run_id(run, create=create) or "(new id)", tracking, name=run.name,
                           step_key="step" if kind == "gan" else "epoch", config={**config, "kind": kind})


# --- planning ------------------------------------------------------------------------------------------


def plan(run: Path, root: Path, *, create: bool = True) -> Plan:
    ident = _identity(run, root, create=create)
    record = sync_record(run)
    if record.get("id") not in (None, ident["id"]):  # the folder was restarted under a new id
        record = {"last_step": None, "files": {}}
    # W&B's resume is strict about existence when replayed (the intent is stored in the run record), so
    # continue a run only when W&B is known to hold it: uploaded before, or logged live (it has a URL).
    known = record["last_step"] is not None or bool(record["files"]) or bool(ident.get("url"))
    p = Plan(run, ident, files=dict(record["files"]), last_step=record["last_step"], resume=known)
    if run.name == REPORT_DIR:
        _plan_report(p, record)
    else:
        _plan_run(p, record)
    return p


def _changed(p: Plan, record: dict[str, Any], rel: str, digest: str) -> bool:
    """Whether W&B lacks this version of `rel` (a file, the summary, a table); if so, the plan records it."""
    if record["files"].get(rel) == digest:
        return False
    p.files[rel] = digest
    return True


def _plan_run(p: Plan, record: dict[str, Any]) -> None:
    run = RunDir(p.run)
    step_key = p.ident["step_key"]
    result = run.result()
    rows = [r for r in run.metrics() if isinstance(r.get(step_key), int)]
    last = max((r[step_key] for r in rows), default=None)
    # A run still going may not have written every row of its last step yet (a GAN's evaluation follows
    # the step's batch row): hold that step back until the run has finished.
    upto = last if result is not None or last is None else last - 1
    done = record["last_step"]
    p.rows = [r for r in rows if (done is None or r[step_key] > done) and (upto is None or r[step_key] <= upto)]
    if p.rows:
        p.last_step = max(r[step_key] for r in p.rows)
    for path in sorted((p.run / "samples").glob("*.png")):
        match = re.search(r"(\d+)", path.stem)
        if match and _changed(p, record, f"samples/{path.name}", file_hash(path)):
            p.images.append((int(match.group(1)), "samples/grid", [path]))
    strips: dict[str, list[Path]] = {}
    for path in sorted((p.run / "interpolation").glob("*.png")):
        if _changed(p, record, f"interpolation/{path.name}", file_hash(path)):
            strips.setdefault(path.stem.rsplit("-", 1)[0], []).append(path)
    at = last if last is not None else 0  # post-hoc work belongs to the trained model: its last step
    p.images += [(at, f"interpolation/{method}", paths) for method, paths in strips.items()]
    p.images.sort(key=lambda item: item[0])
    if result is not None and _changed(p, record, "result.json", summary_digest(result)):
        p.summary = summary_values(result)
    wanted = p.ident.get("artifacts") and p.ident.get("job_type") == "gan" and result is not None
    if wanted and run.checkpoint_file.exists() and _changed(p, record, "checkpoint.pt", file_hash(run.checkpoint_file)):
        p.artifact = run.checkpoint_file


def _plan_report(p: Plan, record: dict[str, Any]) -> None:
    spec = read_json_object(p.run / "report.json") or {}
    base = p.run.parent
    p.last_step = (record["last_step"] or 0) + 1  # each upload of a changed report is the next step
    for name, table in spec.get("tables", {}).items():
        if _changed(p, record, f"table:{name}", json_hash(table)):
            p.tables[name] = table
    for rel in spec.get("figures", []):
        path = base / rel
        if path.is_file() and _changed(p, record, rel, file_hash(path)):
            p.images.append((p.last_step, "figures/" + _slug(rel), [path]))
    if p.empty:
        p.last_step = record["last_step"]


def _slug(rel: str) -> str:
    return str(Path(rel).with_suffix("")).replace("figures/", "", 1).replace("/", "_")


# --- replay and upload ---------------------------------------------------------------------------------


def replay(p: Plan) -> Path:
    """Write the plan as one offline W&B run with the folder's id (resume="allow" when W&B holds the run
    already: on upload it continues it, from the server's history offset); return the offline run's folder."""
    import wandb

    dest = p.run / REPLAY_DIR
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    step_key = p.ident["step_key"]
    wb = init_run(p.ident, dest, mode="offline", resume="allow" if p.resume else None,
                  settings=wandb_settings(system_metrics=False, replay=True))
    try:
        offline_dir = Path(wb.dir).parent
        events: list[tuple[int, int, dict[str, Any]]] = [(r[step_key], 0, wandb_row(r)) for r in p.rows]
        for step, key, paths in p.images:  # after the step's rows
            images = [wandb.Image(str(path), caption=path.stem) for path in paths]
            events.append((step, 1, {key: images if len(images) > 1 else images[0], step_key: step}))
        for _, _, row in sorted(events, key=lambda e: (e[0], e[1])):
            wb.log(row)
        for name, table in p.tables.items():
            wb.log({f"tables/{name}": wandb.Table(columns=table["header"], data=table["rows"]),
                    step_key: p.last_step or 0})
        if p.summary:
            wb.summary.update(p.summary)
        if p.artifact is not None:
            log_checkpoint(wb, p.ident["id"], p.artifact, p.run.name)
        wb.finish()
    except BaseException:
        wb.finish(exit_code=1)
        raise
    return offline_dir


def upload(offline_dir: Path, what: str) -> None:
    """`wandb sync` of one replayed run, in its own process group so a hung upload is stopped whole."""
    timeout = float(os.environ.get(TIMEOUT_ENV, "600"))
    proc = subprocess.Popen([sys.executable, "-m", "wandb", "sync", str(offline_dir)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise UserError(f"uploading {what} to W&B timed out after {timeout:.0f} s (is the W&B server reachable? "
                        f"WANDB_BASE_URL={os.environ.get('WANDB_BASE_URL', 'https://api.wandb.ai')}); nothing "
                        f"was recorded as uploaded: rerun `lstmgan sync` later ({TIMEOUT_ENV} sets the limit)") \
            from None
    if proc.returncode != 0:
        lines = [line.removeprefix("wandb: ").strip() for line in output.splitlines() if line.strip()]
        why = next((line for line in reversed(lines) if "error" in line.lower()), lines[-1] if lines else "")
        raise UserError(f"uploading {what} to W&B failed (wandb sync exit {proc.returncode}: {why}); nothing was "
                        f"recorded as uploaded: log in with `wandb login` or set WANDB_API_KEY, then rerun "
                        f"`lstmgan sync`")


def commit(p: Plan) -> None:
    """Record that W&B now holds the plan's rows and files."""
    write_json_atomic(p.run / SYNC_FILE, {"id": p.ident["id"], "last_step": p.last_step, "files": p.files})


def sync(folder: Path, dry_run: bool) -> list[str]:
    """Upload every run folder under `folder` (a sweep, a study or one run) to its W&B run, sending only
    what W&B lacks. Returns the lines to print; raises UserError on the first failure (the runs before
    it stay recorded as uploaded)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder; give a sweep, study or run folder, e.g. runs/palindrome")
    runs = run_folders(folder)
    if not runs:
        raise UserError(f"{folder} holds no run folders (looked for config.yaml up to three levels down)")
    lines: list[str] = []
    plans = [plan(run, folder, create=False) for run in runs]  # reads only: a refused sync writes nothing
    todo = [p for p in plans if not p.empty]
    if dry_run:
        for p in plans:
            lines += p.describe()
        lines.append(f"dry run: {len(todo)} of {plural(len(plans), 'run')} would be uploaded, in this order; "
                     "nothing sent")
        return lines
    if todo and not has_credentials():
        raise UserError("no W&B credentials here: log in with `wandb login` or set WANDB_API_KEY, then rerun "
                        f"`lstmgan sync {folder}` (--dry-run lists what would be uploaded)")
    plans = [plan(run, folder, create=True) for run in runs]
    for p in plans:
        if not p.empty:
            try:
                offline_dir = replay(p)
            except Exception as e:  # noqa: BLE001 - W&B's own failure to write the local run: one line
                raise UserError(f"could not write the W&B replay of {p.run} ({type(e).__name__}: "
                                f"{first_line(e)}); nothing was uploaded or recorded") from None
            upload(offline_dir, f"{p.run} (W&B run {p.target()})")
            commit(p)
            shutil.rmtree(p.run / REPLAY_DIR, ignore_errors=True)  # uploaded: the folder and the record remain
        lines += p.describe()
    lines.append(f"uploaded {len(todo)} of {plural(len(plans), 'run')}; the others were up to date")
    return lines
