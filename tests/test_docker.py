"""The Docker image, built and run for real: lint, build, --help, a tiny CPU run into a mounted folder,
non-root user, labels, and no W&B key in any layer.

Needs a Docker engine (`eval "$(docker/ci/engine.sh start)"`, or any engine DOCKER_HOST points at); skips
without one, but fails instead when LSTMGAN_REQUIRE_DOCKER=1 (CI). The image is built once per session with
`make docker-build` as lstmgan:test. Knobs (docker/ci/run.sh sets them for CI):

* LSTMGAN_DOCKER_BASE_IMAGE: base to build on (default: the Makefile's CUDA PyTorch image; CI uses the
  Debian stand-in from docker/ci/stand-in-base.sh since nothing can be pulled there);
* LSTMGAN_DOCKER_BUILD_ARGS: extra `docker build` flags, shell-quoted
  (CI: docker/ci/pip-mirror.sh build-args);
* LSTMGAN_DOCKER_RUN_ARGS: extra `docker run` flags for the containers started here (default --network none).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
IMAGE = "lstmgan:test"
REQUIRE = os.environ.get("LSTMGAN_REQUIRE_DOCKER") == "1"
RUN_ARGS = shlex.split(os.environ.get("LSTMGAN_DOCKER_RUN_ARGS", "--network none"))
# A fresh fake key per session: if it shows up anywhere in the image, the build leaked the environment.
FAKE_KEY = f"fake-wandb-key-{uuid.uuid4().hex}"

# A cold build on a base without torch installs it (GB of wheels); the fixture's time counts against the first
# test's timeout.
pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(2400)]


def _unavailable(reason: str) -> None:
    if REQUIRE:
        pytest.fail(f"{reason} (LSTMGAN_REQUIRE_DOCKER=1, so this fails instead of skipping)")
    pytest.skip(reason)


def _docker_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("WANDB_API_KEY", None)
    if "DOCKER_HOST" not in env:
        # The engine from docker/ci/engine.sh, when it runs and nobody exported its DOCKER_HOST.
        sock = Path(env.get("LSTMGAN_DOCKER_STATE", "/tmp/lstmgan-docker")) / "docker.sock"
        if sock.is_socket():
            env["DOCKER_HOST"] = f"unix://{sock}"
    return env


ENV = _docker_env()


def docker(*args: str, check: bool = True, timeout: float = 600, **kw) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["docker", *args], env=ENV, capture_output=True, text=True, timeout=timeout, **kw)
    if check and proc.returncode != 0:
        pytest.fail(f"docker {' '.join(args)} exited {proc.returncode}:\n"
                    f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


@pytest.fixture(scope="session")
def engine() -> None:
    if shutil.which("docker") is None:
        _unavailable("no `docker` client on PATH")
    try:
        proc = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], env=ENV,
                              capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        _unavailable("`docker info` did not answer within 30 s")
    if proc.returncode != 0:
        why = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "docker info failed"
        _unavailable(f"no Docker engine reachable ({why}); start one: eval \"$(docker/ci/engine.sh start)\"")


def _makefile_default(name: str) -> str:
    m = re.search(rf"^{name}\s*\?=\s*(\S+)", (ROOT / "Makefile").read_text(), re.M)
    assert m, f"Makefile has no {name} ?= default"
    return m.group(1)


def _has_image(name: str) -> bool:
    return docker("image", "inspect", name, check=False).returncode == 0


def _base_image() -> str:
    """LSTMGAN_DOCKER_BASE_IMAGE, else the Makefile's base if the engine has it (or can pull it), else the
    CI stand-in when it was built (docker/ci/stand-in-base.sh): `make test` with the CI services up works
    too."""
    if os.environ.get("LSTMGAN_DOCKER_BASE_IMAGE"):
        return os.environ["LSTMGAN_DOCKER_BASE_IMAGE"]
    default = _makefile_default("BASE_IMAGE")
    stand_in = os.environ.get("LSTMGAN_STAND_IN_TAG", "lstmgan-base:stand-in")
    if not _has_image(default) and _has_image(stand_in):
        return stand_in
    return default


def _build_args() -> str:
    """LSTMGAN_DOCKER_BUILD_ARGS, else the flags for CI's local pip mirror when it runs, else none."""
    if "LSTMGAN_DOCKER_BUILD_ARGS" in os.environ:
        return os.environ["LSTMGAN_DOCKER_BUILD_ARGS"]
    proc = subprocess.run([str(ROOT / "docker/ci/pip-mirror.sh"), "build-args"], env=ENV,
                          capture_output=True, text=True, timeout=30)
    return proc.stdout.strip() if proc.returncode == 0 else ""


@pytest.fixture(scope="session")
def image(engine: None) -> dict:
    """Build lstmgan:test once, with a fake W&B key in make's environment; return `docker inspect` of it."""
    base, build_args = _base_image(), _build_args()
    cmd = ["make", "--no-print-directory", "-C", str(ROOT), "docker-build", "IMAGE=lstmgan", "TAG=test",
           "LATEST_TAG=", f"BASE_IMAGE={base}", f"DOCKER_BUILD_ARGS={build_args}"]
    proc = subprocess.run(cmd, env={**ENV, "WANDB_API_KEY": FAKE_KEY}, capture_output=True, text=True,
                          timeout=2400)
    if proc.returncode != 0:
        pytest.fail(f"{shlex.join(cmd)} exited {proc.returncode}:\n"
                    f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return json.loads(docker("image", "inspect", IMAGE).stdout)[0]


def test_hadolint_passes() -> None:
    proc = subprocess.run([str(ROOT / "docker/ci/lint.sh")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"hadolint:\n{proc.stdout}\n{proc.stderr}"


def test_image_metadata(image: dict) -> None:
    config = image["Config"]
    assert config["Entrypoint"] == ["lstmgan"]
    labels = config["Labels"]
    version = re.search(r'^version = "(.+)"', (ROOT / "pyproject.toml").read_text(), re.M).group(1)
    assert labels["org.opencontainers.image.version"] == version
    assert labels["org.opencontainers.image.revision"]
    assert labels["org.opencontainers.image.source"].startswith("https://")
    assert set(config["Volumes"]) >= {"/runs", "/data"}
    assert config["WorkingDir"]
    env = dict(e.split("=", 1) for e in config["Env"])
    assert "WANDB_MODE" not in env, "WANDB_MODE is chosen at run time (--wandb auto), not baked in"
    assert not any(k.startswith(("WANDB", "PIP_EXTRA", "PIP_INDEX", "PIP_CONSTRAINT")) for k in env)


def test_help_runs_offline(image: dict) -> None:
    proc = docker("run", "--rm", "--network", "none", IMAGE, "--help")
    assert "palindrome" in proc.stdout


def test_packaged_configs_work_in_the_image(image: dict) -> None:
    """The image's working folder has no jobs/: job files and cluster profiles come from the package."""
    listed = docker("run", "--rm", "--network", "none", IMAGE, "configs").stdout
    assert all(name in listed for name in ("study", "palindrome-sweep", "gan-mnist", "example-gpu", "local"))
    study = docker("run", "--rm", "--network", "none", IMAGE, "study", "--preset", "quick", "--print-config").stdout
    assert "interpolation_pairs: 1" in study and "seeds:" in study


def test_default_user_is_not_root(image: dict) -> None:
    user = image["Config"]["User"]
    assert user and user.split(":")[0] not in ("0", "root"), f"Config.User is {user!r}"
    uid = docker("run", "--rm", *RUN_ARGS, "--entrypoint", "id", IMAGE, "-u").stdout.strip()
    assert uid != "0"


def _run_palindrome(out: Path, *user: str) -> Path:
    docker("run", "--rm", *RUN_ARGS, *user, "-v", f"{out}:/runs", IMAGE,
           "palindrome", "--model", "rnn", "--length", "5", "--epochs", "1", "--out", "/runs",
           "--wandb", "disabled", "--device", "cpu")
    results = list(out.rglob("result.json"))
    assert len(results) == 1, f"expected one result.json under {out}, found {results}"
    json.loads(results[0].read_text())
    return results[0]


def test_run_as_image_user_writes_into_mounted_folder(image: dict, tmp_path: Path) -> None:
    """The image's own user writes into a host folder it owns (chowned to the image's UID, as users do)."""
    uid = int(docker("run", "--rm", *RUN_ARGS, "--entrypoint", "id", IMAGE, "-u").stdout)
    gid = int(docker("run", "--rm", *RUN_ARGS, "--entrypoint", "id", IMAGE, "-g").stdout)
    out = tmp_path / "runs"
    out.mkdir()
    if os.geteuid() == 0:
        os.chown(out, uid, gid)
    else:
        out.chmod(0o777)
    result = _run_palindrome(out)
    assert result.stat().st_uid == uid
    # Written under the container's umask 022, so other host users (the one who started the run, when the
    # folder was merely chowned to the image's UID) can read the results, like any file a user writes.
    for path in result.parent.iterdir():
        mode = path.stat().st_mode & 0o777
        assert mode & 0o444 == 0o444, f"{path.name} is mode {mode:o}, not world-readable"


def test_run_as_host_user_gives_host_owned_files(image: dict, tmp_path: Path) -> None:
    """docker run --user "$(id -u):$(id -g)": files in the mount belong to the host user, as documented.
    As root (CI) a made-up unprivileged UID stands in for that user, one the image has no passwd entry for."""
    uid, gid = (os.getuid(), os.getgid()) if os.geteuid() != 0 else (4242, 4242)
    out = tmp_path / "runs"
    out.mkdir()
    if os.geteuid() == 0:
        os.chown(out, uid, gid)
    result = _run_palindrome(out, "--user", f"{uid}:{gid}")
    for path in [result, *result.parent.iterdir()]:
        assert (path.stat().st_uid, path.stat().st_gid) == (uid, gid), path


def _layer_bytes(image: dict, *, in_place: bool = True) -> Iterator[bytes]:
    """Every byte of every layer, as chunks, with a NUL between files so no match spans two of them.

    With overlay2 and its folders readable (CI: a private engine, as root), each layer's own folder is read
    in place, the lower layers too, so a file that a later layer deleted is still seen. Otherwise the layers
    come from `docker save`, which first stages a full copy of the image (GB) in the engine's temp folder:
    that copy once filled a CI machine's disk."""
    driver = image.get("GraphDriver") or {}
    data = driver.get("Data") or {}
    layers = [Path(d) for d in [data.get("UpperDir"), *(data.get("LowerDir") or "").split(":")] if d]
    readable = layers and all(os.access(d, os.R_OK | os.X_OK) for d in layers)
    if in_place and driver.get("Name") == "overlay2" and readable:
        for layer in layers:
            for folder, _, names in os.walk(layer):
                for name in names:
                    path = os.path.join(folder, name)
                    yield path.encode() + b"\0"
                    mode = os.lstat(path).st_mode
                    if stat.S_ISLNK(mode):
                        yield os.readlink(path).encode() + b"\0"
                    elif stat.S_ISREG(mode):  # not the whiteouts (character devices)
                        with open(path, "rb") as f:
                            while chunk := f.read(16 << 20):
                                yield chunk
                        yield b"\0"
        return
    proc = subprocess.Popen(["docker", "save", image["Id"]], env=ENV, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    while chunk := proc.stdout.read(16 << 20):
        yield chunk
    assert proc.wait(timeout=600) == 0, "docker save failed"


def _found_in_layers(image: dict, needles: dict[str, bytes], *, in_place: bool = True) -> dict[str, bool]:
    found = {name: False for name in needles}
    keep = max(len(n) for n in needles.values())
    tail = b""
    for chunk in _layer_bytes(image, in_place=in_place):
        window = tail + chunk
        for name, needle in needles.items():
            found[name] = found[name] or window.find(needle) >= 0
        tail = window[-keep:]
    return found


@pytest.mark.parametrize("in_place", [True, False], ids=["layer-folders", "docker-save"])
def test_the_layer_scan_sees_a_file_of_an_image_by_either_route(engine: None, tmp_path: Path,
                                                                  in_place: bool) -> None:
    needle = f"needle-{uuid.uuid4().hex}".encode()
    (tmp_path / "note.txt").write_bytes(b"x" * (1 << 20) + needle)  # past the first chunk of a reader
    with tarfile.open(tmp_path / "layer.tar", "w") as tar:
        tar.add(tmp_path / "note.txt", arcname="note.txt")
    tag = f"lstmgan-scan:{uuid.uuid4().hex[:12]}"
    docker("import", str(tmp_path / "layer.tar"), tag)
    try:
        image = json.loads(docker("image", "inspect", tag).stdout)[0]
        found = _found_in_layers(image, {"needle": needle, "absent": needle[::-1]}, in_place=in_place)
    finally:
        docker("rmi", "-f", tag, check=False)
    assert found == {"needle": True, "absent": False}


def test_no_wandb_key_in_image(image: dict) -> None:
    """The build ran with WANDB_API_KEY set: it must not be in the history, the config or any layer."""
    history = docker("history", "--no-trunc", "--format", "{{.CreatedBy}}", IMAGE).stdout
    assert history.strip()
    assert FAKE_KEY not in history
    assert FAKE_KEY not in json.dumps(image)
    # The control: the dependency list that the Dockerfile copies in and a later layer deletes.
    found = _found_in_layers(image, {"key": FAKE_KEY.encode(),
                                     "control": (ROOT / "docker/requirements.txt").read_bytes()})
    assert found["control"], "the scan of the layers did not see a file that is in one of them"
    assert not found["key"], "the W&B key from the build environment is in a layer of the image"
