"""Print pyproject.toml's [project] dependencies, one per line, for `pip install -r`.

The image installs these in a layer of their own, before the source is copied in, so that editing
lstmgan/ rebuilds only the small source layer. Python 3.10 has no tomllib; pip's vendored tomli does.
"""

import sys

try:
    import tomllib
except ImportError:  # Python 3.10
    from pip._vendor import tomli as tomllib

with open(sys.argv[1], "rb") as f:
    print("\n".join(tomllib.load(f)["project"]["dependencies"]))
