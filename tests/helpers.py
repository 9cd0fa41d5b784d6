"""Helpers shared by the tests: the real CLI in a subprocess (or its main() in a fresh interpreter), its process
tree, waiting, metrics without times, a small disk that fills up."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path


def lstmgan(*args: object, **kwargs: object) -> subprocess.Popen[str]:
    """`python -m lstmgan ARGS` with stdout/stderr captured as text."""
    return subprocess.Popen([sys.executable, "-m", "lstmgan", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)  # type: ignore[call-overload]


def in_fresh_process(*argvs: list[object], watch: list[str]) -> tuple[list[int], str, list[str]]:
    """lstmgan's main() on each argv in a new interpreter: the exit codes, what they printed on stdout, and
    which of the modules in `watch` were loaded by then (what importing the CLI and running them costs)."""
    code = textwrap.dedent("""
        import contextlib, io, json, sys
        from lstmgan.cli.main import main
        argvs, watch = json.loads(sys.argv[1]), json.loads(sys.argv[2])
        with contextlib.redirect_stdout(io.StringIO()) as out:
            codes = [main(argv) for argv in argvs]
        print(json.dumps([codes, out.getvalue(), [m for m in watch if m in sys.modules]]))
    """)
    argv_json = json.dumps([[str(a) for a in argv] for argv in argvs])
    done = subprocess.run([sys.executable, "-c", code, argv_json, json.dumps(watch)], capture_output=True,
                          text=True, check=True)
    codes, out, loaded = json.loads(done.stdout)
    return codes, out, loaded


def wait_for(predicate: Callable[[], object], what: str, timeout: float = 120, poll: float = 0.02) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out waiting for {what}")


def children(pid: int) -> set[int]:
    """Every descendant of pid (from /proc)."""
    parents: dict[int, int] = {}
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line)
            parents[int(status.parent.name)] = int(fields["PPid"])
        except (OSError, KeyError, ValueError):
            continue
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    """Running (a zombie waiting for a reaper counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/status").read_text().split("State:\t", 1)[1][:1]
    except (OSError, IndexError):
        return False
    return state != "Z"


def metrics_without_times(run: Path) -> list[dict[str, object]]:
    return [{k: v for k, v in json.loads(line).items() if k != "epoch_time"}
            for line in (run / "metrics.jsonl").read_text().splitlines()]


def checkpointed(folder: Path) -> list[Path]:
    return [p.parent for p in folder.glob("*/checkpoint.pt")]


def env_without(*keys: str) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in keys}


def fill(path: Path) -> None:
    """Write until the file system is full, the last partial page included."""
    for chunk in (b"\0" * 65536, b"\0"):
        with open(path, "ab", buffering=0) as f:
            try:
                while True:
                    f.write(chunk)
            except OSError as e:
                assert e.errno == errno.ENOSPC
