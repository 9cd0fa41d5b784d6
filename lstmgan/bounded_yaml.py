"""YAML parsed with a bound on what its aliases expand to (`parse_yaml`): a small alias bomb in a job file, a
`--set` value or a planted config.yaml is refused before anything is built from it."""

from __future__ import annotations

from typing import Any

import yaml

MAX_YAML_VALUES = 100_000  # the values a YAML document may expand to, aliases counted at each use


class YamlTooLarge(yaml.YAMLError):
    """A YAML document whose aliases expand past MAX_YAML_VALUES (an alias bomb) or refer to themselves."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem, self.problem_mark = problem, None


class _BoundedLoader(yaml.SafeLoader):
    """safe_load's loader, refusing a document before it is built when its aliases expand too far: the
    composed graph shares aliased nodes, anything that walks the built values (a check, an error message,
    a dump) visits each use."""

    def construct_document(self, node: yaml.Node) -> Any:
        _check_expansion(node)
        return super().construct_document(node)


def _check_expansion(root: yaml.Node) -> None:
    """Count the values `root` expands to, each shared node once (memoized), without recursion."""
    size: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        children = [c for pair in node.value for c in (pair if isinstance(pair, tuple) else (pair,))] \
            if isinstance(node, (yaml.SequenceNode, yaml.MappingNode)) else []
        if children_done:
            on_path.discard(id(node))
            size[id(node)] = min(1 + sum(size[id(c)] for c in children), MAX_YAML_VALUES + 1)
            if size[id(node)] > MAX_YAML_VALUES:
                raise YamlTooLarge(f"its aliases expand to more than {MAX_YAML_VALUES:,} values (an alias bomb?)")
            continue
        if id(node) in size:
            continue
        if id(node) in on_path:
            raise YamlTooLarge("an alias refers to a value that contains it")
        on_path.add(id(node))
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in size)


def parse_yaml(text: str) -> Any:
    """yaml.safe_load with a bound on alias expansion (YamlTooLarge, a yaml.YAMLError, beyond it)."""
    return yaml.load(text, Loader=_BoundedLoader)  # noqa: S506 (a SafeLoader)
