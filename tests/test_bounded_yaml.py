"""YAML with a bound on alias expansion (bounded_yaml.py): a bomb is refused before it is built, ordinary
aliases and merge keys load as yaml.safe_load loads them."""

import pytest
import yaml

from lstmgan.bounded_yaml import YamlTooLarge, parse_yaml

BOMB = "[&a [x, x, x, x, x, x, x, x, x, x], " + ", ".join(f"&{c} [{', '.join([f'*{p}'] * 10)}]"
                                                        for p, c in zip("abcdefgh", "bcdefghi")) + "]"


def test_yaml_whose_aliases_expand_past_the_bound_is_refused_before_it_is_built():
    with pytest.raises(YamlTooLarge, match="more than 100,000 values"):
        parse_yaml(BOMB)
    with pytest.raises(YamlTooLarge, match="contains it"):
        parse_yaml("&a [1, *a]")
    assert issubclass(YamlTooLarge, yaml.YAMLError)  # every YAML reader's existing handler catches it


def test_yaml_with_a_few_aliases_and_merge_keys_loads_as_safe_load_does():
    text = "base: &b {hidden: 64, lr: 0.001}\nrun: {<<: *b, lr: 0.003}\nlengths: &l [3, 4]\nagain: *l\n"
    assert parse_yaml(text) == yaml.safe_load(text)
    assert parse_yaml("[" + ", ".join(["&x 1"] + ["*x"] * 99_000) + "]") == [1] * 99_001
