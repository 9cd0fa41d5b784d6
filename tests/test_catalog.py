"""Job files and cluster profiles ship inside the package: a name works from any directory and from a
wheel; a path always wins; an unknown name lists what ships."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lstmgan import catalog
from lstmgan.config import SweepConfig
from lstmgan.errors import UserError
from lstmgan.overrides import build, load_yaml

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name, kind, file", [
    ("study", "job", "jobs/study.yaml"),
    ("study.yaml", "job", "jobs/study.yaml"),
    ("palindrome-sweep", "job", "jobs/palindrome-sweep.yaml"),
    ("gan-mnist", "job", "jobs/gan-mnist.yaml"),
    ("local", "cluster", "jobs/clusters/local.yaml"),
    ("example-gpu", "cluster", "jobs/clusters/example-gpu.yaml"),
])
def test_a_packaged_name_finds_the_file_inside_the_package(name, kind, file, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no jobs/ here
    path = catalog.find(name, kind)
    assert path == ROOT / "lstmgan" / file
    assert load_yaml(path)  # and it is a YAML mapping


def test_the_checkout_keeps_its_jobs_spelling_through_a_relative_symlink():
    link = ROOT / "jobs"
    assert link.is_symlink() and os.readlink(link) == "lstmgan/jobs"  # relative: survives a clone elsewhere
    assert (link / "clusters" / "local.yaml").read_text() == (ROOT / "lstmgan/jobs/clusters/local.yaml").read_text()


def test_an_existing_path_wins_over_a_packaged_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("study").write_text("sweep: {seeds: [7]}\n")
    assert catalog.find("study", "job") == Path("study")
    other = tmp_path / "mine.yaml"
    other.write_text("epochs: 3\n")
    assert catalog.find(other, "job") == other
    assert build(SweepConfig, yaml_path="palindrome-sweep", flags={}, sets=None) == SweepConfig()  # build finds names


def test_an_unknown_name_lists_the_packaged_ones(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError) as e:
        catalog.find("studdy", "job")
    assert str(e.value) == ("unknown config 'studdy'; packaged ones: gan-mnist, palindrome-sweep, study; "
                            "or give the path of a YAML file")
    with pytest.raises(UserError, match=r"unknown cluster profile 'big'.*packaged ones: example-gpu, local"):
        catalog.find("big", "cluster")
    with pytest.raises(UserError) as e:
        catalog.find("jobs/study.yaml", "job")  # the checkout's spelling, outside the checkout
    assert str(e.value) == "cannot read config jobs/study.yaml: no such file; for the packaged one, give --config study"
    with pytest.raises(UserError, match="cannot read cluster profile mine.yaml: no such file; packaged ones"):
        catalog.find("mine.yaml", "cluster")
    with pytest.raises(UserError, match="unknown cluster profile"):
        catalog.find("study", "cluster")  # kinds do not mix


def test_listing_describes_every_packaged_file_by_its_first_comment():
    rows = catalog.listing()
    assert [(r["kind"], r["name"]) for r in rows] == [
        ("job", "gan-mnist"), ("job", "palindrome-sweep"), ("job", "study"),
        ("cluster", "example-gpu"), ("cluster", "local")]
    for row in rows:
        first = Path(row["path"]).read_text().splitlines()[0]
        assert first == "# " + row["description"] and row["description"]


def test_a_non_editable_install_finds_its_packaged_files_from_any_directory(tmp_path):
    """What the Docker image does: `pip install` (not editable), then run from a folder without jobs/.
    Built from a copy of the sources, so the checkout gets no build/ folder; a few seconds."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "lstmgan", src / "lstmgan", ignore=shutil.ignore_patterns("__pycache__"))
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index", "-q",
                    "--target", str(target), str(src)], check=True, cwd=tmp_path, capture_output=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = ("from lstmgan import catalog; print(catalog.find('study', 'job')); "
            "print(catalog.find('local', 'cluster')); print(len(catalog.listing()))")
    out = subprocess.run([sys.executable, "-c", code], check=True, cwd=elsewhere, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(target)}).stdout.split()
    assert out == [str(target / "lstmgan/jobs/study.yaml"), str(target / "lstmgan/jobs/clusters/local.yaml"), "5"]
