"""The Docker image installs its dependencies from docker/requirements.txt (a layer that survives edits to the
rest of pyproject.toml): that file must hold exactly pyproject.toml's [project] dependencies."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_images_requirements_are_pyprojects_dependencies():
    wanted = subprocess.run([sys.executable, str(ROOT / "docker" / "requirements-from-pyproject.py"),
                             str(ROOT / "pyproject.toml")], capture_output=True, text=True, check=True).stdout
    lines = (ROOT / "docker" / "requirements.txt").read_text().splitlines()
    assert [line for line in lines if line and not line.startswith("#")] == wanted.splitlines(), \
        "docker/requirements.txt differs from pyproject.toml's dependencies: run `make docker-requirements`"
