"""What the pipeline calls once a step has written its files, so that W&B gets a copy of them.

Training reports to its Tracker as it goes. The steps after training (interpolation strips, a sweep's
summary, the study report) only write files and return numbers; they never call W&B. The pipeline then
publishes those files: online, uploaded now; offline, written where `lstmgan sync` finds them. A W&B
failure is a warning: the files on disk are the result, W&B a copy of them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from lstmgan.config import TrackingConfig
from lstmgan.fs import write_json_atomic
from lstmgan.tracking.identity import IDENTITY_FILE, group_id, identity, identity_record, run_id
from lstmgan.tracking.sync import REPORT_DIR, sync
from lstmgan.tracking.tracker import resolve_mode

log = logging.getLogger(__name__)

# Named tables, each its header and rows (a W&B Table each, `tables/<name>` in the report run).
Tables = dict[str, tuple[Sequence[str], Sequence[Sequence[Any]]]]


def publish(run: Path, tracking: TrackingConfig) -> None:
    """The files a step added to a trained run's folder (interpolation strips) into the run's own W&B run:
    online, what W&B lacks of the folder is uploaded now; otherwise `lstmgan sync` uploads it later (the
    folder is the truth, so nothing needs to be noted for it). Never raises for W&B."""
    if resolve_mode(tracking.mode) == "online":
        _upload(run, f"W&B upload of {run}", run)


def publish_report(folder: Path, tables: Tables, figures: Sequence[Path], tracking: TrackingConfig) -> Path | None:
    """A sweep's or study's comparison as one W&B run (job_type report) in the folder's group: its tables
    as W&B Tables and its figures. Written as <folder>/wandb-report/report.json (the report run's folder);
    uploaded now when online, by `lstmgan sync <folder>` otherwise. A W&B failure is a warning. Returns the
    report run folder (None when W&B is disabled)."""
    mode = resolve_mode(tracking.mode)
    if mode == "disabled":
        return None
    run = folder / REPORT_DIR
    run.mkdir(parents=True, exist_ok=True)
    spec = {"tables": {name: {"header": list(header), "rows": [[_cell(c) for c in row] for row in rows]}
                       for name, (header, rows) in tables.items()},
            "figures": [os.path.relpath(f, folder) for f in figures]}
    write_json_atomic(run / "report.json", spec)
    report = replace(tracking, group=tracking.group or group_id(folder), job_type="report",
                     tags=tuple(sorted({"report", *tracking.tags})), artifacts=False)
    config = {"kind": "report", "folder": folder.name, "tables": sorted(tables), "figures": len(figures)}
    write_json_atomic(run / IDENTITY_FILE, identity_record(run_id(run), report, name=f"report-{folder.name}",
                                                           step_key="step", config=config,
                                                           url=identity(run).get("url")))
    if mode == "online":
        _upload(run, "W&B report upload", folder)
    return run


def _upload(folder: Path, what: str, retry: Path) -> None:
    try:
        sync(folder, dry_run=False)
    except Exception as e:  # noqa: BLE001 - the files on disk are the result; W&B is a copy of them
        log.warning("%s failed (%s); `lstmgan sync %s` retries", what, e, retry)


def _cell(value: Any) -> Any:
    """A table cell as W&B Tables and JSON take it: a number, text, a flag or nothing."""
    return value if isinstance(value, (int, float, str, bool)) or value is None else str(value)
