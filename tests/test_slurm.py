"""SLURM through submitit, against a real cluster (tests/slurm/local-cluster.sh), no mocks.

Tests marked `slurm` need the cluster: they skip when it is not up, and fail instead when
LSTMGAN_REQUIRE_SLURM=1 (CI). The --dry-run and missing-sbatch tests need no cluster and always run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from conftest import TINY
from submitit.slurm.slurm import SlurmJob
from helpers import metrics_without_times, wait_for

from lstmgan.config import SweepConfig, TrackingConfig
from lstmgan.experiments import make_jobs
from lstmgan.runner.slurm import load_profile, plan_tasks, preview
from lstmgan.runner.status import task_runs, task_statuses

ROOT = Path(__file__).resolve().parents[1]
CLUSTER_SCRIPT = ROOT / "tests" / "slurm" / "local-cluster.sh"
LOCAL = ROOT / "jobs" / "clusters" / "local.yaml"
GPU = next(p for p in (ROOT / "lstmgan" / "jobs" / "clusters" / "example-gpu.yaml",
                       ROOT / "jobs" / "clusters" / "example-gpu.yaml") if p.exists())
SECRET = "wandb-secret-4f1d9c2e7a"
# A tiny sweep: 2 tasks of 2 epochs each.
SWEEP = ["sweep", "--lengths", "3", "--models", "rnn", "lstm", "--seeds", "0", "--epochs", "2", *TINY, "--quiet"]


def cluster_problem() -> str | None:
    """Why the local cluster cannot be used, or None when it can."""
    if shutil.which("sbatch") is None:
        return "sbatch is not on PATH (install with tests/slurm/local-cluster.sh install)"
    try:
        ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"scontrol ping failed: {e}"
    if ping.returncode != 0 or "UP" not in ping.stdout:
        return "the SLURM cluster is not up (tests/slurm/local-cluster.sh start)"
    return None


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    """The local cluster, found through SLURM_CONF (taken from local-cluster.sh when not exported)."""
    if "SLURM_CONF" not in os.environ and CLUSTER_SCRIPT.exists():
        line = subprocess.run([str(CLUSTER_SCRIPT), "env"], capture_output=True, text=True).stdout.strip()
        conf = line.removeprefix("export SLURM_CONF=")
        if Path(conf).exists():
            monkeypatch.setenv("SLURM_CONF", conf)
    problem = cluster_problem()
    if problem:
        if os.environ.get("LSTMGAN_REQUIRE_SLURM") == "1":
            pytest.fail(f"LSTMGAN_REQUIRE_SLURM=1 but {problem}")
        pytest.skip(problem)




def all_final(sweep: Path):
    statuses = task_statuses(sweep)
    return statuses if all(s.outcome != "active" for s in statuses) else None


def files_containing(folder: Path, text: str) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and text.encode() in p.read_bytes()]


# --- no cluster needed ----------------------------------------------------------------------------------


def script_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if not line.startswith("# ")]


@pytest.mark.timeout(60)
def test_dry_run_with_apptainer_prints_the_sbatch_script_and_writes_nothing(cli, tmp_path):
    image = tmp_path / "lstmgan.sif"
    image.write_bytes(b"not really an image")
    r = cli(*SWEEP, "--out", tmp_path / "runs", "--slurm", "--cluster", LOCAL, "--container", "apptainer",
            "--image", image, "--gpus", "1", "--time", "30", "--dry-run")
    assert r.code == 0, r.err
    lines = script_lines(r.out)
    assert lines[0] == "#!/bin/bash"
    for expected in ("#SBATCH --array=0-1%2", "#SBATCH --partition=debug", "#SBATCH --gpus-per-node=1",
                     "#SBATCH --time=30", "#SBATCH --mem=2GB", "#SBATCH --cpus-per-task=1",
                     f"#SBATCH --output={tmp_path}/runs/palindrome/submitit/%A_%a_0_log.out"):
        assert expected in lines, f"{expected} not in the script:\n{r.out}"
    (command,) = [line for line in lines if line.startswith("srun ")]
    cwd = Path.cwd()
    assert (f"apptainer exec --nv --bind={cwd}:{cwd} --bind={tmp_path}/runs:{tmp_path}/runs "
            f"--pwd={cwd} {image} python -u -m submitit.core._submit {tmp_path}/runs/palindrome/submitit") in command
    assert "task 1: " in r.out and "lstm-L3-s0" in r.out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lstmgan.sif"], "--dry-run wrote files"


@pytest.mark.timeout(60)
def test_dry_run_with_pyxis_passes_the_image_to_srun(cli, tmp_path):
    profile = tmp_path / "pyxis.yaml"
    profile.write_text("partition: gpu\naccount: proj\ngpus: 2\nmem: 1.5\nsbatch: [--exclusive, --mail-type=END]\n"
                       "setup: ['module load cuda']\ncontainer:\n  runtime: pyxis\n"
                       "  image: registry.example.org#lstmgan:0.1.0\n  mounts: [/scratch/data]\n")
    r = cli("palindrome", "--length", "4", *TINY, "--out", tmp_path / "runs", "--slurm", "--cluster", profile,
            "--dry-run")
    assert r.code == 0, r.err
    lines = script_lines(r.out)
    for expected in ("#SBATCH --partition=gpu", "#SBATCH --account=proj", "#SBATCH --gpus-per-node=2",
                     "#SBATCH --mem=1536MB", "#SBATCH --exclusive", "#SBATCH --mail-type=END", "module load cuda"):
        assert expected in lines, f"{expected} not in the script:\n{r.out}"
    assert not any(line.startswith("#SBATCH --array") for line in lines), "one run is a single job, not an array"
    (command,) = [line for line in lines if line.startswith("srun ")]
    cwd = Path.cwd()
    assert "'--container-image=registry.example.org#lstmgan:0.1.0'" in command
    assert (f"--container-mounts={cwd}:{cwd},{tmp_path}/runs:{tmp_path}/runs,"
            f"/scratch/data:/scratch/data --container-workdir={cwd} python -u -m submitit.core._submit") in command
    assert not (tmp_path / "runs").exists()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("content, message", [
    ("partition: debug\ngpu: 1\n", "unknown key 'gpu'"),
    ("time: 0\n", "time must be at least 1"),
    ("container: apptainer\n", "container must be a mapping of settings"),
    ("container:\n  runtime: docker\n", "unknown container runtime 'docker'"),
    ("sbatch: [exclusive]\n", "must be a long option"),
])
def test_an_invalid_profile_is_one_line_and_exit_2(cli, tmp_path, content, message):
    profile = tmp_path / "bad.yaml"
    profile.write_text(content)
    r = cli(*SWEEP, "--out", tmp_path / "runs", "--slurm", "--cluster", profile)
    assert r.code == 2 and message in r.err and len(r.err.strip().splitlines()) == 1, r.err
    assert not (tmp_path / "runs").exists()


@pytest.mark.timeout(60)
def test_slurm_without_sbatch_on_path_says_so(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    r = cli(*SWEEP, "--out", tmp_path / "runs", "--slurm")
    assert r.code == 2
    assert "sbatch" in r.err and "not on PATH" in r.err and "without --slurm" in r.err, r.err
    assert not (tmp_path / "runs").exists()


@pytest.mark.timeout(60)
def test_slurm_flags_without_slurm_are_refused(cli, tmp_path):
    r = cli(*SWEEP, "--out", tmp_path / "runs", "--wait", "--mem", "4")
    assert r.code == 2 and "--mem, --wait only apply to SLURM submissions; add --slurm" in r.err, r.err


def forty_runs(out: Path):
    sweep = SweepConfig(lengths=[5, 10, 15, 20], models=["rnn", "lstm"], seeds=[0, 1, 2, 3, 4])
    return make_jobs(sweep, out, TrackingConfig(mode="disabled"), force=False)


@pytest.mark.timeout(60)
def test_a_gpu_profile_packs_the_default_sweep_into_at_most_8_tasks(tmp_path):
    jobs = forty_runs(tmp_path)
    profile = load_profile(GPU, {})
    tasks = plan_tasks(jobs, profile)
    assert len(tasks) <= 8 and sorted(j.run_dir for t in tasks for j in t) == sorted(j.run_dir for j in jobs)
    assert max(map(len, tasks)) - min(map(len, tasks)) <= 1, "tasks of unequal size"
    text = preview(jobs, tmp_path / "palindrome", profile, str(GPU))
    assert text.startswith(f"# {len(tasks)} tasks for 40 runs"), text
    assert f"#SBATCH --array=0-{len(tasks) - 1}%" in text
    for i, task in enumerate(tasks):
        assert f"#   task {i}: " + ", ".join(str(j.run_dir) for j in task) in text
    assert not (tmp_path / "palindrome").exists(), "a preview wrote files"
    # a CPU profile: one run per task; an explicit setting wins over both defaults
    assert len(plan_tasks(jobs, load_profile(LOCAL, {}))) == 40
    three = plan_tasks(jobs, load_profile(GPU, {"runs_per_task": 3}))
    assert len(three) == 14 and max(map(len, three)) == 3
    with pytest.raises(Exception, match="runs_per_task must be at least 0"):
        load_profile(GPU, {"runs_per_task": -1})


@pytest.mark.timeout(60)
def test_dry_run_of_the_default_sweep_on_a_gpu_profile_prints_at_most_8_tasks(cli, tmp_path):
    r = cli("sweep", "--lengths", "5", "10", "15", "20", "--seeds", "0", "1", "2", "3", "4", "--wandb", "disabled",
            "--out", tmp_path / "runs", "--slurm", "--cluster", GPU, "--dry-run")
    assert r.code == 0, r.err
    header = r.out.splitlines()[0]
    assert header.startswith("# ") and int(header.split()[1]) <= 8, header
    assert sum(line.count("-s") for line in r.out.splitlines() if line.startswith("#   task ")) == 40
    assert not (tmp_path / "runs").exists()


def test_status_never_unpickles_a_planted_result_file(cli, tmp_path, monkeypatch):
    """A *_result.pkl planted in a shared sweep folder would run code in whoever unpickles it: the error of a
    failed task comes from its run's task.json (or its log), never from submitit's result pickle."""
    bin_dir = tmp_path / "bin"  # SLURM's accounting says the task failed: status looks for its error
    bin_dir.mkdir()
    (bin_dir / "sacct").write_text("#!/bin/sh\nprintf 'JobID|State\\n4242_0|FAILED\\n'\n")
    (bin_dir / "sacct").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    sweep = tmp_path / "palindrome"
    run = sweep / "rnn-L3-s0"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("model: rnn\nlength: 3\n")
    (run / "task.json").write_text(json.dumps({"outcome": "failed", "error": "RuntimeError: boom"}))
    submitit = sweep / "submitit"
    submitit.mkdir()
    witness = tmp_path / "pwned"
    for name in ("4242_0_0_result.pkl", "4242_0_result.pkl"):
        (submitit / name).write_bytes(pickle_that_creates(witness))
    (sweep / "slurm.json").write_text(json.dumps({"job_id": "4242", "submitit_folder": "submitit",
                                                  "tasks": [{"job_id": "4242_0", "runs": ["rnn-L3-s0"]}]}))
    r = cli("status", sweep)
    assert r.code == 0 and "4242_0" in r.out, r.err
    assert "FAILED" in r.out and "RuntimeError: boom" in r.out, r.out
    assert not witness.exists(), "status unpickled a planted file"


def pickle_that_creates(path: Path) -> bytes:
    import pickle

    class Plant:
        def __reduce__(self):
            return (Path.touch, (path,))

    return pickle.dumps(Plant())


# --- the real cluster ---------------------------------------------------------------------------------------


@pytest.mark.slurm
@pytest.mark.timeout(180)
def test_a_sweep_is_one_job_array_and_matches_a_local_run(cli, tmp_path, monkeypatch, cluster):
    monkeypatch.setenv("WANDB_API_KEY", SECRET)  # submitting with a key in the environment must not leak it
    r = cli(*SWEEP, "--out", tmp_path / "slurm", "--slurm", "--cluster", LOCAL, "--wait")
    assert r.code == 0, r.err
    sweep = tmp_path / "slurm" / "palindrome"
    record = json.loads((sweep / "slurm.json").read_text())
    assert [t["job_id"] for t in record["tasks"]] == [f"{record['job_id']}_0", f"{record['job_id']}_1"]
    assert [task_runs(t) for t in record["tasks"]] == [["rnn-L3-s0"], ["lstm-L3-s0"]]
    assert "final val acc" in r.out and "COMPLETED" in r.out

    local = cli(*SWEEP, "--out", tmp_path / "local")
    assert local.code == 0, local.err
    assert (sweep / "summary.csv").read_text() == (tmp_path / "local" / "palindrome" / "summary.csv").read_text()
    for run in ("rnn-L3-s0", "lstm-L3-s0"):
        assert metrics_without_times(sweep / run) == metrics_without_times(tmp_path / "local" / "palindrome" / run)

    status = cli("status", sweep)
    assert status.code == 0 and status.out.count("COMPLETED") == 2, status.out
    assert [s.outcome for s in task_statuses(sweep)] == ["done", "done"]
    collect = cli("collect", sweep)
    assert collect.code == 0 and "| lstm | 3 | 1/1 |" in (sweep / "summary.md").read_text()
    assert files_containing(sweep, SECRET) == []


@pytest.mark.slurm
@pytest.mark.timeout(240)
def test_a_preempted_job_requeues_and_ends_like_an_uninterrupted_run(cli, tmp_path, monkeypatch, cluster):
    monkeypatch.setenv("WANDB_API_KEY", SECRET)
    args = ["palindrome", "--model", "lstm", "--length", "8", "--epochs", "10", *TINY, "--set", "hidden=48",
            "--set", "samples=3000", "--quiet"]
    offline = [a if a != "disabled" else "offline" for a in args]  # W&B offline, as on a compute node
    # --force: the requeued call must resume, not wipe (Job.force is cleared before checkpoint() pickles it)
    r = cli(*offline, "--force", "--out", tmp_path / "slurm", "--slurm", "--cluster", LOCAL)
    assert r.code == 0, r.err
    sweep = tmp_path / "slurm" / "palindrome-runs"
    run = sweep / "lstm-L8-s0"
    record = json.loads((sweep / "slurm.json").read_text())
    job = SlurmJob(sweep / "submitit", record["job_id"])

    wait_for(lambda: (run / "metrics.jsonl").exists() and len((run / "metrics.jsonl").read_text().splitlines()) >= 2,
             "two epochs", timeout=90, poll=0.5)
    job._interrupt()  # preemption: SIGTERM then submitit's USR2 → checkpoint() → scontrol requeue
    (status,) = wait_for(lambda: all_final(sweep), "the requeued job to finish", timeout=150, poll=0.5)
    assert status.outcome == "done", status
    result = json.loads((run / "result.json").read_text())
    assert result["resumed"] is True, "the job finished before it was interrupted"
    assert "Requeued job" in (sweep / status.log).read_text()
    wandb_id = (run / "wandb-id").read_text()

    assert cli(*args, "--out", tmp_path / "whole").code == 0
    whole = tmp_path / "whole" / "palindrome-runs" / "lstm-L8-s0"
    assert metrics_without_times(run) == metrics_without_times(whole)
    a = torch.load(run / "checkpoint.pt", weights_only=True)["model"]
    b = torch.load(whole / "checkpoint.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in b)

    offline_runs = sorted((run / "wandb").glob("offline-run-*"))  # W&B's own files: one per attempt
    assert len(offline_runs) >= 2 and all(p.name.endswith(wandb_id) for p in offline_runs), offline_runs
    # ...but W&B gets one run for the folder, each epoch once: sync replays the folder, not those files
    listed = cli("sync", sweep, "--dry-run")
    assert listed.code == 0, listed.err
    assert listed.out.count(f"/lstmgan/{wandb_id} (group") == 1 and "10 metric rows, epoch 1–10" in listed.out, \
        listed.out
    assert files_containing(sweep, SECRET) == []


@pytest.mark.slurm
@pytest.mark.timeout(120)
def test_a_task_that_raises_is_reported_failed_and_wait_exits_1(cli, tmp_path, cluster):
    if torch.cuda.is_available():
        pytest.skip("the failure under test is asking for CUDA on a node without it")
    # Valid at submission, fails on the node: the runs ask for CUDA, the local cluster has none.
    args = ["sweep", "--lengths", "3", "--models", "lstm", "--seeds", "0", "--epochs", "2",
            *[a if a != "cpu" else "cuda" for a in TINY], "--quiet"]
    r = cli(*args, "--out", tmp_path, "--slurm", "--cluster", LOCAL, "--wait")
    assert r.code == 1, r.err
    assert "1 of 1 task failed" in r.err and "no CUDA device is visible" in r.err, r.err
    (status,) = task_statuses(tmp_path / "palindrome")
    assert (status.state, status.outcome) == ("FAILED", "failed")
    assert "no CUDA device is visible" in status.error  # from the run's task.json, not from a pickle
    witness = tmp_path / "pwned"
    for pkl in (tmp_path / "palindrome" / "submitit").glob("*_result.pkl"):
        pkl.write_bytes(pickle_that_creates(witness))
    shown = cli("status", tmp_path / "palindrome")
    assert shown.code == 0 and "FAILED" in shown.out and "COMPLETED" not in shown.out, shown.out
    assert not witness.exists(), "status unpickled a planted file"


@pytest.mark.slurm
@pytest.mark.timeout(240)
def test_runs_share_tasks_and_each_keeps_its_own_folder(cli, tmp_path, cluster):
    packed = tmp_path / "packed.yaml"
    packed.write_text(LOCAL.read_text() + "runs_per_task: 2\n")
    args = ["sweep", "--lengths", "3", "4", "--models", "rnn", "lstm", "--seeds", "0", "--epochs", "2", *TINY,
            "--quiet"]
    r = cli(*args, "--out", tmp_path / "slurm", "--slurm", "--cluster", packed, "--wait")
    assert r.code == 0, r.err
    sweep = tmp_path / "slurm" / "palindrome"
    record = json.loads((sweep / "slurm.json").read_text())
    assert record["runs_per_task"] == 2 and [len(task_runs(t)) for t in record["tasks"]] == [2, 2]
    statuses = task_statuses(sweep)
    assert len(statuses) == 4 and all(s.outcome == "done" for s in statuses), statuses
    assert all((sweep / name / "task.json").exists() for t in record["tasks"] for name in task_runs(t))
    assert cli(*args, "--out", tmp_path / "local").code == 0
    for s in statuses:
        name = s.run_dir.name
        assert metrics_without_times(sweep / name) == metrics_without_times(tmp_path / "local" / "palindrome" / name)
    assert cli("collect", sweep).code == 0


@pytest.mark.slurm
@pytest.mark.timeout(60)
def test_an_oversized_request_is_rejected_before_anything_is_queued(cli, tmp_path, cluster):
    before = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True).stdout
    r = cli(*SWEEP, "--out", tmp_path, "--slurm", "--cluster", LOCAL, "--mem", "100000")
    assert r.code == 2 and "SLURM rejects the request" in r.err and "100000 GB" in r.err, r.err
    assert len(r.err.strip().splitlines()) == 1
    r = cli(*SWEEP, "--out", tmp_path, "--slurm", "--cluster", LOCAL, "--cpus", "512")
    assert r.code == 2 and "SLURM rejects the request" in r.err and "512 CPUs" in r.err, r.err
    assert subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True).stdout == before
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slurm
@pytest.mark.timeout(60)
def test_a_second_submission_into_a_queued_sweep_is_refused(cli, tmp_path, cluster):
    profile = tmp_path / "held.yaml"
    profile.write_text(LOCAL.read_text() + "sbatch: [--hold]\n")  # stays PENDING until released
    r = cli(*SWEEP, "--out", tmp_path / "runs", "--slurm", "--cluster", profile)
    assert r.code == 0, r.err
    sweep = tmp_path / "runs" / "palindrome"
    job_id = json.loads((sweep / "slurm.json").read_text())["job_id"]
    try:
        again = cli(*SWEEP, "--out", tmp_path / "runs", "--slurm", "--cluster", LOCAL)
        assert again.code == 2, again.err
        assert f"holds SLURM job {job_id}" in again.err and f"lstmgan status {sweep}" in again.err, again.err
        assert json.loads((sweep / "slurm.json").read_text())["job_id"] == job_id
    finally:
        subprocess.run(["scancel", job_id], check=False)
