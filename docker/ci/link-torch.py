"""Hard-link torch, torchvision and every distribution they require, from the environment of the Python that
runs this, into a site-packages folder (copying where a link cannot be made, e.g. across file systems).

docker/ci/stand-in-base.sh uses it to give its Debian stand-in the torch that the real base image
(pytorch/pytorch) has, with the versions the tests ran with: links cost no disk, where installing torch
during the image build cost about 11 GB at its peak (the unpacked wheels, then the committed copy of them).

    python docker/ci/link-torch.py TARGET_SITE_PACKAGES
"""

from __future__ import annotations

import importlib.metadata as md
import os
import shutil
import sys
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOTS = ("torch", "torchvision")


def requirement_closure(names: tuple[str, ...]) -> list[md.Distribution]:
    """The installed distributions `names` need, themselves included, following extras and markers."""
    found: dict[str, md.Distribution] = {}
    seen: set[tuple[str, str]] = set()
    todo = [(name, ()) for name in names]
    while todo:
        name, extras = todo.pop()
        dist = md.distribution(name)
        key = canonicalize_name(dist.metadata["Name"])
        found[key] = dist
        for extra in ("", *extras):  # a requirement such as cuda-toolkit[cublas] brings that extra's needs
            if (key, extra) in seen:
                continue
            seen.add((key, extra))
            for text in dist.requires or []:
                req = Requirement(text)
                if req.marker is None or req.marker.evaluate({"extra": extra}):
                    todo.append((req.name, tuple(req.extras)))
    return list(found.values())


def link_into(target: Path, dists: list[md.Distribution]) -> int:
    count = 0
    for dist in dists:
        for record in dist.files or []:
            relative = os.path.normpath(record)
            source = Path(dist.locate_file(record))
            if relative.startswith("..") or not source.is_file():  # console scripts live outside site-packages
                continue
            dest = target / relative
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(source, dest)
            except OSError:
                shutil.copy2(source, dest)
            count += 1
    return count


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__.strip().splitlines()[-1].strip())
    dists = requirement_closure(ROOTS)
    files = link_into(Path(sys.argv[1]), dists)
    versions = ", ".join(f"{d.metadata['Name']} {d.version}" for d in dists if d.metadata["Name"] in ROOTS)
    print(f"{versions} and {len(dists) - len(ROOTS)} requirements: {files} files", file=sys.stderr)
