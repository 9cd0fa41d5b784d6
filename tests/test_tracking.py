"""W&B, read back with W&B's own tools (`wandb leet inspect`, which reads the .wandb transaction log).

No W&B server is reachable from tests: training-time offline runs and the replayed runs that
`lstmgan sync` builds are checked on disk; the upload step (`wandb sync`) is checked to fail in one line,
recording nothing, when the server is missing or hangs.
"""

import ast
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY, snapshot
from PIL import Image

from lstmgan.config import PalindromeConfig, TrackingConfig
from lstmgan.errors import UserError
from lstmgan.experiments import palindrome_job
from lstmgan.rundir import RunDir
from lstmgan.tracking import identity
from lstmgan.tracking import sync as wandb_sync
from lstmgan.tracking import tracker as tracking
from lstmgan.tracking.identity import group_id
from lstmgan.tracking.publish import publish, publish_report
from lstmgan.tracking.tracker import Tracker, resolve_mode, where_message

WANDB = str(Path(sys.executable).parent / "wandb")
RUN = PalindromeConfig(model="rnn", length=4, hidden=16, samples=200, epochs=3, device="cpu")


def inspect_summary(path: Path) -> dict:
    out = subprocess.run([WANDB, "leet", "inspect", "--summary", "--json", str(path)],
                         capture_output=True, text=True, check=True, timeout=120)
    return json.loads(out.stdout)


def records(offline_run: Path) -> list[dict]:
    """Every record of an offline run's .wandb file, as W&B's own reader prints them."""
    out = subprocess.run([WANDB, "leet", "inspect", "--json", str(offline_run)],
                         capture_output=True, text=True, check=True, timeout=120)
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


def run_record(offline_run: Path) -> dict:
    return next(r["run"] for r in records(offline_run) if r["type"] == "run")


def history(offline_run: Path) -> list[dict]:
    return [r["history"]["item"] for r in records(offline_run) if r["type"] == "history"]


def rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def replayed(run: Path) -> Path:
    (offline,) = (run / "wandb-sync" / "wandb").glob("offline-run-*")
    return offline


def png(path: Path, value: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((28, 28), value, dtype=np.uint8)).save(path)
    return path


def test_an_offline_run_logs_full_config_group_kind_and_namespaced_metrics(cli, tmp_path):
    args = [a for a in TINY if a not in ("--wandb", "disabled")]
    r = cli("sweep", "--lengths", "4", "--models", "rnn", "--epochs", "3", "--name", "wb", "--wandb", "offline",
            "--out", tmp_path, *args)
    assert r.code == 0, r.err
    run = tmp_path / "wb" / "rnn-L4-s0"
    summary = inspect_summary(run / "wandb")
    last = rows(run)[-1]
    assert summary["state"] == "finished"
    assert summary["config"]["hidden"] == 16 and summary["config"]["length"] == 4
    assert summary["config"]["kind"] == "palindrome" and summary["config"]["encoding"] == "scalar"
    assert set(summary["tags"]) == {"rnn", "L4"}
    values = summary["summary"]
    assert values["epoch"] == last["epoch"]
    for flat, name in (("train_loss", "train/loss"), ("val_acc", "val/acc"), ("val_loss", "val/loss")):
        assert values[name]["last"] == pytest.approx(last[flat], rel=1e-9), name  # final …
    assert values["val/acc"]["max"] == pytest.approx(max(r["val_acc"] for r in rows(run)))  # … and best
    assert values["train/grad_norm"] == pytest.approx(last["grad_norm"])
    result = json.loads((run / "result.json").read_text())
    assert values["result/final_val_acc"] == pytest.approx(result["final_val_acc"])
    (offline,) = (run / "wandb").glob("offline-run-*")
    record = run_record(offline)
    group = (tmp_path / "wb" / "wandb-group").read_text().strip()
    assert record["job_type"] == "palindrome" and record["run_group"] == group and group.startswith("wb-")
    metric_defs = [r["metric"] for r in records(offline) if r["type"] == "metric"]
    assert {"glob_name": "*", "step_metric": "epoch"}.items() <= next(m for m in metric_defs
                                                                      if m.get("glob_name") == "*").items()
    assert "train_loss" in last and "train/loss" not in last  # metrics.jsonl keeps its flat keys


def test_auto_mode_is_offline_without_credentials_and_online_with_a_key(monkeypatch):
    assert resolve_mode("auto") == "offline"
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert resolve_mode("auto") == "online"
    assert resolve_mode("disabled") == "disabled"


def test_a_failing_wandb_never_stops_training(tmp_path, monkeypatch, caplog):
    import wandb

    def broken_init(*args, **kwargs):
        raise RuntimeError("network unreachable")

    monkeypatch.setattr(wandb, "init", broken_init)
    run = RunDir(tmp_path)
    with Tracker(run, TrackingConfig(mode="online"), name="x", config={}, step_key="epoch") as tracker:
        tracker.log({"epoch": 1, "loss": 0.5})
    assert json.loads(run.metrics_file.read_text()) == {"epoch": 1, "loss": 0.5}
    assert "W&B init failed" in caplog.text


def test_the_group_is_one_per_folder_stable_and_pinned_once_the_folder_exists(tmp_path, monkeypatch):
    sweep = tmp_path / "palindrome"
    first = group_id(sweep)
    assert first.startswith("palindrome-") and group_id(sweep) == first
    assert not sweep.exists()  # jobs are made before their folder is checked: nothing written yet
    assert group_id(tmp_path / "other" / "palindrome") != first  # same name, another folder, another group
    job = palindrome_job(RUN, sweep, TrackingConfig(mode="disabled"), force=False)
    assert job.tracking.group == first and job.tracking.job_type == "palindrome"
    job()
    assert (sweep / "wandb-group").read_text().strip() == first
    monkeypatch.setattr(identity, "_GROUPS", {})  # a new process (a rerun, a requeued task) finds it on disk
    assert group_id(sweep) == first
    chosen = palindrome_job(RUN, sweep, TrackingConfig(mode="disabled", group="mine"), force=False)
    assert chosen.tracking.group == "mine"  # --group wins


def crash_at(epoch: int):
    def progress(done, total, text):
        if done == epoch:  # the checkpoint of `epoch` is on disk: as if the job were killed now
            raise KeyboardInterrupt

    return progress


def test_sync_replays_a_resumed_run_once_per_step_and_a_second_sync_sends_nothing(tmp_path):
    job = palindrome_job(RUN, tmp_path / "sw", TrackingConfig(mode="offline"), force=False)
    with pytest.raises(KeyboardInterrupt):
        job(crash_at(2))
    run = job.run_dir
    # A sync while the run is unfinished sends what is settled (the last step may still get rows).
    early = wandb_sync.plan(run, tmp_path / "sw")
    assert [r["epoch"] for r in early.rows] == [1] and not early.summary
    wandb_sync.replay(early)
    first = history(replayed(run))
    assert not early.resume and not run_record(replayed(run)).get("resume")  # the first upload creates the run
    wandb_sync.commit(early)  # what sync records once `wandb sync` of the replay succeeded

    job()  # resumed from the epoch-2 checkpoint: W&B's own files now hold two offline runs with one id
    assert len(list((run / "wandb").glob("offline-run-*"))) == 2
    later = wandb_sync.plan(run, tmp_path / "sw")
    assert [r["epoch"] for r in later.rows] == [2, 3] and later.summary
    wandb_sync.replay(later)
    offline = replayed(run)
    second = history(offline)
    steps = [h["epoch"] for h in first + second]
    assert steps == [1, 2, 3]  # every epoch exactly once across both uploads
    assert second[-1]["val/acc"] == pytest.approx(rows(run)[-1]["val_acc"])
    record = run_record(offline)
    assert record["run_id"] == (run / "wandb-id").read_text().strip() and record["resume"]
    assert record["job_type"] == "palindrome" and record["run_group"] == group_id(tmp_path / "sw")
    assert set(record["tags"]) == {"rnn", "L4"}
    summary = inspect_summary(offline)
    assert summary["config"]["model"] == "rnn" and summary["config"]["kind"] == "palindrome"
    assert summary["summary"]["result/final_val_acc"] == pytest.approx(json.loads((run / "result.json").read_text())
                                                                         ["final_val_acc"])
    wandb_sync.commit(later)
    before = snapshot(tmp_path)
    lines = wandb_sync.sync(tmp_path / "sw", dry_run=False)  # nothing new: no replay, no upload, no change
    assert "up to date" in lines[0] and lines[-1].startswith("uploaded 0 of 1")
    assert snapshot(tmp_path) == before


def test_post_hoc_images_reach_the_runs_own_record_at_its_last_step(tmp_path):
    job = palindrome_job(RUN, tmp_path / "sw", TrackingConfig(mode="offline"), force=False)
    job()
    run = job.run_dir
    wandb_sync.commit(wandb_sync.plan(run, tmp_path / "sw"))  # as if synced once
    png(run / "samples" / "step0000003.png", 10)
    png(run / "interpolation" / "lerp-0.png", 20)
    png(run / "interpolation" / "lerp-1.png", 30)
    p = wandb_sync.plan(run, tmp_path / "sw")
    assert not p.rows and not p.summary
    assert [(step, key, len(paths)) for step, key, paths in p.images] == [(3, "samples/grid", 1),
                                                                          (3, "interpolation/lerp", 2)]
    wandb_sync.replay(p)
    offline = replayed(run)
    summary = inspect_summary(offline)
    assert summary["config"]["model"] == "rnn" and summary["run_id"] == (run / "wandb-id").read_text().strip()
    logged = history(offline)
    assert [h["epoch"] for h in logged] == [3, 3]
    assert logged[1]["interpolation/lerp._type"] == "images/separated" and logged[0]["samples/grid._type"] == \
        "image-file"
    assert run_record(offline)["run_group"] == group_id(tmp_path / "sw")
    wandb_sync.commit(p)
    png(run / "interpolation" / "lerp-1.png", 40)  # `lstmgan interpolate` again: only the changed strip goes
    again = wandb_sync.plan(run, tmp_path / "sw")
    assert [(key, [x.name for x in paths]) for _, key, paths in again.images] == [("interpolation/lerp",
                                                                                    ["lerp-1.png"])]


def test_dry_run_lists_runs_targets_and_order_and_writes_nothing(cli, tmp_path):
    r = cli("sweep", "--lengths", "4", "--models", "rnn", "lstm", "--epochs", "2", "--name", "s", "--out", tmp_path,
            *TINY)
    assert r.code == 0, r.err
    before = snapshot(tmp_path)
    lines = wandb_sync.sync(tmp_path / "s", dry_run=True)
    assert snapshot(tmp_path) == before
    heads = [line for line in lines if "→ W&B run" in line]
    assert [h.split(" → ")[0] for h in heads] == [str(tmp_path / "s" / "lstm-L4-s0"), str(tmp_path / "s" / "rnn-L4-s0")]
    ident = json.loads((tmp_path / "s" / "rnn-L4-s0" / "wandb-run.json").read_text())
    assert f"/lstmgan/{ident['id']} (group {ident['group']}, job_type palindrome" in heads[1]
    assert "  2 metric rows, epoch 1–2" in lines
    assert lines[-1].startswith("dry run: 2 of 2 runs would be uploaded")
    assert wandb_sync.sync(tmp_path / "s" / "rnn-L4-s0", dry_run=True)[0] == heads[1]  # one run folder alone


@pytest.fixture
def finished_run(tmp_path):
    job = palindrome_job(RUN, tmp_path / "sw", TrackingConfig(mode="disabled"), force=False)
    job()
    return job.run_dir


def test_an_upload_without_credentials_fails_in_one_line_and_writes_nothing(finished_run):
    for name in ("wandb-run.json", "wandb-id"):  # a folder from before the identity: sync would make one
        (finished_run / name).unlink()
    before = snapshot(finished_run.parent)
    with pytest.raises(UserError) as e:
        wandb_sync.sync(finished_run, dry_run=False)
    assert "no W&B credentials" in str(e.value) and "\n" not in str(e.value)
    assert snapshot(finished_run.parent) == before


def test_a_damaged_run_folder_does_not_stop_a_sync_plan(finished_run):
    damaged = finished_run.parent / "rnn-L9-s0"
    damaged.mkdir()
    (damaged / "config.yaml").write_bytes(b"\x00\xff not yaml")
    lines = wandb_sync.sync(finished_run.parent, dry_run=True)
    assert any("rnn-L4-s0" in line for line in lines) and lines[-1].startswith("dry run:")


def test_tracker_bookkeeping_that_cannot_be_written_never_stops_training(tmp_path, monkeypatch, caplog):
    import wandb

    class Live:  # stands in for an online run: no W&B server is reachable here (the failure is local)
        resumed, url, summary = False, None, {}

        def log(self, *_, **__): pass
        def define_metric(self, *_, **__): pass
        def finish(self, *_, **__): pass

    monkeypatch.setattr(wandb, "init", lambda *a, **k: Live())
    run = RunDir(tmp_path / "run")
    with Tracker(run, TrackingConfig(mode="online"), name="x", config={}, step_key="epoch") as tracker:
        (run.path / "wandb-sync.json").unlink(missing_ok=True)
        (run.path / "wandb-sync.json").mkdir()  # the record cannot be written
        tracker.log({"epoch": 1, "loss": 0.5})
    assert json.loads(run.metrics_file.read_text()) == {"epoch": 1, "loss": 0.5}
    assert "cannot write" in caplog.text


def test_a_hung_upload_is_stopped_in_one_line_and_records_nothing(finished_run, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # nothing listens: wandb sync retries forever
    monkeypatch.setenv(wandb_sync.TIMEOUT_ENV, "5")
    with pytest.raises(UserError) as e:
        wandb_sync.sync(finished_run, dry_run=False)
    assert "timed out after 5 s" in str(e.value) and "\n" not in str(e.value)
    assert not (finished_run / "wandb-sync.json").exists()
    assert wandb_sync.plan(finished_run, finished_run).rows  # the next sync sends it all again


def test_the_report_run_holds_the_tables_and_figures_in_the_group(tmp_path):
    folder = tmp_path / "study"
    fig = png(folder / "figures" / "L4.png", 50)
    cfg = TrackingConfig(mode="offline")
    run = publish_report(folder, {"sweep": (["model", "acc"], [["rnn", "10 %"], ["lstm", "99 %"]])}, [fig], cfg)
    p = wandb_sync.plan(run, folder)
    assert list(p.tables) == ["sweep"] and [key for _, key, _ in p.images] == ["figures/L4"]
    wandb_sync.replay(p)
    offline = replayed(run)
    record = run_record(offline)
    assert record["job_type"] == "report" and record["run_group"] == group_id(folder)
    logged = history(offline)
    assert any(h.get("tables/sweep._type") == "table-file" for h in logged)
    assert any(h.get("figures/L4._type") == "image-file" for h in logged)
    wandb_sync.commit(p)
    assert wandb_sync.plan(run, folder).empty  # the same report again: nothing to send
    assert publish_report(folder, {}, [], replace(cfg, mode="disabled")) is None


def test_gan_checkpoints_become_artifacts_at_sync_when_asked(finished_run):
    ident = json.loads((finished_run / "wandb-run.json").read_text())
    (finished_run / "wandb-run.json").write_text(json.dumps({**ident, "artifacts": True, "job_type": "gan"}))
    p = wandb_sync.plan(finished_run, finished_run)
    assert p.artifact == finished_run / "checkpoint.pt"
    wandb_sync.replay(p)
    assert any(r["type"] == "artifact" for r in records(replayed(finished_run)))


def test_system_metrics_are_on_by_default_and_off_with_the_flag(tmp_path):
    def stats(cfg: TrackingConfig, folder: Path) -> int:
        with Tracker(RunDir(folder), cfg, name="x", config={}, step_key="epoch") as tracker:
            tracker.log({"epoch": 1, "val_acc": 0.5})
        (offline,) = (folder / "wandb").glob("offline-run-*")
        return sum(r["type"] == "stats" for r in records(offline))

    assert stats(TrackingConfig(mode="offline"), tmp_path / "on") >= 1
    assert stats(TrackingConfig(mode="offline", system_metrics=False), tmp_path / "off") == 0


def test_where_message_names_the_mode_and_where_the_runs_are(tmp_path, finished_run):
    assert "disabled" in where_message([finished_run], "disabled")
    offline = where_message([finished_run], "offline")
    assert str(finished_run) in offline and f"`lstmgan sync {finished_run}`" in offline
    two = where_message([finished_run, finished_run.parent / "lstm-L4-s0"], "offline")
    assert f"2 runs under {finished_run.parent}" in two and f"`lstmgan sync {finished_run.parent}`" in two
    ident = json.loads((finished_run / "wandb-run.json").read_text())
    url = f"https://wandb.ai/me/lstmgan/runs/{ident['id']}"
    (finished_run / "wandb-run.json").write_text(json.dumps({**ident, "url": url}))
    assert where_message([finished_run], "online") == f"W&B (online): {url}"


def test_a_fresh_start_in_an_uploaded_folder_gets_a_new_wandb_run(finished_run):
    old = (finished_run / "wandb-id").read_text()
    wandb_sync.commit(wandb_sync.plan(finished_run, finished_run))
    (finished_run / "result.json").unlink()  # as if killed before its first checkpoint: it starts afresh
    (finished_run / "checkpoint.pt").unlink()
    palindrome_job(RUN, finished_run.parent, TrackingConfig(mode="disabled"), force=False)()
    assert (finished_run / "wandb-id").read_text() != old and not (finished_run / "wandb-sync.json").exists()


def test_flat_metrics_keys_become_namespaced_wandb_keys():
    row = {"step": 5, "epoch": 1, "fid": 3.0, "class_histogram": [1, 2], "d_loss": 0.1}
    assert tracking.wandb_row(row) == {
        "step": 5, "epoch": 1, "quality/classifier_fid": 3.0, "quality/class_histogram/0": 1,
        "quality/class_histogram/1": 2, "gan/d_loss": 0.1}


def test_a_study_is_one_group_with_a_job_type_per_kind(tmp_path):
    from lstmgan.config import StudyConfig
    from lstmgan.experiments import study_jobs

    jobs = study_jobs(StudyConfig(), tmp_path / "study", TrackingConfig(mode="offline"), force=False)
    assert {job.tracking.group for job in jobs} == {group_id(tmp_path / "study")}
    assert {job.tracking.job_type for job in jobs} == {"palindrome", "gan"}
    assert not (tmp_path / "study").exists()


def test_a_run_folder_from_before_the_identity_file_is_still_synced_whole(finished_run):
    (finished_run / "wandb-run.json").unlink()
    before = snapshot(finished_run.parent)
    (line, *_) = wandb_sync.sync(finished_run.parent, dry_run=True)
    assert snapshot(finished_run.parent) == before
    wandb_id = (finished_run / "wandb-id").read_text().strip()
    group = (finished_run.parent / "wandb-group").read_text().strip()
    assert f"/lstmgan/{wandb_id} (group {group}, job_type palindrome, name rnn-L4-s0; creates it)" in line
    p = wandb_sync.plan(finished_run, finished_run.parent)
    assert p.ident["config"]["model"] == "rnn" and p.ident["tags"] == ["rnn", "L4"] and len(p.rows) == 3


def test_publishing_post_hoc_files_leaves_them_to_sync_offline_and_never_fails_the_step(finished_run, caplog):
    png(finished_run / "interpolation" / "lerp-0.png", 20)  # a strip made after training
    before = snapshot(finished_run.parent)
    publish(finished_run, TrackingConfig(mode="offline"))  # the folder is the truth: `lstmgan sync` sends it later
    publish(finished_run, TrackingConfig(mode="online"))  # online, W&B out of reach (no credentials): a warning
    assert snapshot(finished_run.parent) == before
    assert f"W&B upload of {finished_run} failed" in caplog.text and f"`lstmgan sync {finished_run}` retries" in \
        caplog.text
    assert [key for _, key, _ in wandb_sync.plan(finished_run, finished_run).images] == ["interpolation/lerp"]


def imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_only_tracking_imports_wandb_and_post_hoc_steps_and_results_never_call_tracking():
    package = Path(tracking.__file__).parents[1]
    modules = {str(p.relative_to(package)): imports(p) for p in sorted(package.rglob("*.py"))}
    wandb_users = {m for m, names in modules.items() if any(n == "wandb" or n.startswith("wandb.") for n in names)}
    assert wandb_users and all(m.startswith("tracking/") for m in wandb_users), wandb_users
    callers = {m for m, names in modules.items() if m.startswith(("gan/", "palindrome/", "results/"))
               and any(n.startswith("lstmgan.tracking") for n in names)}
    assert not callers  # they return files and numbers; the pipeline publishes them
