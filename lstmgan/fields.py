"""The setting types every config is made of (bounds, choices, the few lenient conversions YAML and `--set`
need) and the one translation of pydantic's errors into one-line messages."""

from __future__ import annotations

import typing
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, ConfigDict, Field, ValidationError
from pydantic.dataclasses import dataclass

from lstmgan.errors import UserError


def _as_str(v: Any) -> Any:
    if isinstance(v, bool):  # YAML 1.1 reads a bare off/on as false/true: `cuda_graphs: off`
        return "on" if v else "off"
    return str(v) if isinstance(v, (int, float)) else v  # `--set name=2024` is a name, not a number


def _as_float(v: Any) -> Any:
    try:  # YAML 1.1 reads 1e-3 (no dot) as a string
        return float(v) if isinstance(v, str) or (isinstance(v, int) and not isinstance(v, bool)) else v
    except ValueError:
        return v


_as_list = lambda v: [v] if isinstance(v, (int, float, str)) and not isinstance(v, bool) else v  # seeds=3: [3]


Int = lambda low, high=None: Annotated[int, Field(ge=low, le=high)]


Float = lambda **bounds: Annotated[float, BeforeValidator(_as_float), Field(**bounds)]  # finite: see SETTINGS


Choice = lambda choices: Annotated[Literal[choices], BeforeValidator(_as_str)]


Items = lambda item: Annotated[list[item], BeforeValidator(_as_list)]


Str = Annotated[str, BeforeValidator(_as_str)]


Tags = Annotated[tuple[Str, ...], BeforeValidator(lambda v: tuple(w) if isinstance(w := _as_list(v), list) else w)]


Grid = Annotated[dict[str, list[Any]], BeforeValidator(  # `grid: {hidden: 64}` is one value
    lambda v: {k: x if isinstance(x, list) else [x] for k, x in v.items()} if isinstance(v, dict) else v)]


SETTINGS = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, defer_build=True)


settings = dataclass(frozen=True, config=SETTINGS)


# What a value of the wrong type should have been, by pydantic's error type (`int_type`), and its plural.
_WANTED = {"int": ("an integer", "integers"), "float": ("a number", "numbers"), "string": ("a string", "strings"),
           "bool": ("true or false", "true or false values")}


def refusal(error: ValidationError, cls: type, given: dict[str, Any], source: str) -> UserError:
    """pydantic's report as one line. A broken rule (a bound, a choice) names the setting, its rule and the
    value; a value of the wrong type also names where it came from (`source`) and is shown as given."""
    e = error.errors(include_url=False)[0]
    kind, loc, value, ctx = e["type"], e["loc"], e["input"], e.get("ctx", {})
    key = str(loc[0])
    item = len(loc) == 2 and isinstance(loc[1], int)  # in a list, the rule is the item's: `lengths: [0]`
    name = key.removesuffix("s") if item else key
    field = getattr(cls, "__pydantic_fields__", {}).get(key)
    hint = field.annotation if field else None
    if kind == "literal_error":
        return UserError(f"unknown {name} {value!r}; choose one of: "
                         f"{ctx['expected'].replace(chr(39), '').replace(' or ', ', ')}")
    if kind == "finite_number" or kind.startswith(("greater_than", "less_than")):
        if hint is float:
            return UserError(f"{name} must be {_interval(field.metadata)}, got {_as_float(value)}")
        if kind == "greater_than_equal":
            return UserError(f"{name} must be at least {ctx['ge']:,}, got {value}")
        return UserError(f"{name} must be at most {ctx['le']:,}, got {value}")
    singular, plural = _WANTED.get(kind.split("_")[0], ("a valid value", "valid values"))
    if typing.get_origin(hint) is dict:  # the sweep's grid
        singular = "a mapping of setting: [values]"
    elif typing.get_origin(hint) in (list, tuple):
        singular = f"a list of {plural}" if item else "a list"
    return UserError(f"{source}: {key} must be {singular}, got {given.get(key, value)!r}")


def _interval(bounds: list[Any]) -> str:
    """A number setting's rule from its bounds: `a positive finite number`, `in (0, 1]`."""
    b = {k: getattr(m, k) for m in bounds for k in ("ge", "gt", "le", "lt") if hasattr(m, k)}
    if b == {"gt": 0}:
        return "a positive finite number"
    low, high = ("[", b["ge"]) if "ge" in b else ("(", b["gt"]), (b["le"], "]") if "le" in b else (b["lt"], ")")
    return f"in {low[0]}{low[1]}, {high[0]}{high[1]}"
