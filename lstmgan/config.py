"""Configs: the typed settings with the seed study's defaults, and their stored form (config.yaml).

Each config is a frozen pydantic dataclass made of the types in `fields` (bounds, choices, finite numbers, no
unknown keys); rules across settings live in its `__post_init__`, which pydantic runs after checking each setting,
on every construction. Every layer of settings (defaults < YAML < CLI flags < `--set`, read by `overrides`) goes
through `apply`. Keys are flat (`epochs: 30`): a config that wraps a per-run config resolves a key on itself first,
then on the wrapped one (`--set epochs=30` and `--set run.epochs=30` are the same).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import field
from typing import Any, TypeVar

import yaml
from pydantic import TypeAdapter, ValidationError
from pydantic_core import to_jsonable_python

from lstmgan.choices import (
    DATASETS,
    DEVICES,
    ENCODINGS,
    INITS,
    MAX_BATCH,
    MAX_DIGITS,
    MAX_EPOCHS,
    MAX_EVAL_SAMPLES,
    MAX_FORGET_BIAS,
    MAX_GRID,
    MAX_HIDDEN,
    MAX_LATENT,
    MAX_LENGTH,
    MAX_SAMPLES,
    MAX_SEED,
    MODELS,
    SWEEP_AXES,
    WANDB_MODES,
    max_runs,
)
from lstmgan.errors import UserError
from lstmgan.fields import Choice, Float, Grid, Int, Items, Str, Tags, refusal, settings

C = TypeVar("C")


# What each run's stored config (config.yaml) records besides its settings: the kind of run, so readers
# branch on it instead of guessing, and the format of the file, so a later change can be read or refused.
FORMAT = 1


# --- setting types: each setting's own rule, and the conversions YAML and `--set` need -------------------------
# pydantic runs strict (an integer setting refuses 3.0, "3" and true): these converters are the only leniency.


Seed, Length, Positive = Int(0, MAX_SEED), Int(1, MAX_LENGTH), Float(gt=0)


@settings
class PalindromeConfig:
    """One palindrome run. Defaults are the seed study's settings."""

    model: Choice(MODELS) = "lstm"
    length: Length = 10  # digits the network reads; the palindrome has length + 1 digits
    seed: Seed = 0
    hidden: Int(1, MAX_HIDDEN) = 128
    encoding: Choice(ENCODINGS) = "scalar"  # scalar (the original template's: the digit as one float) | onehot
    init: Choice(INITS) = "pytorch"  # pytorch: U(±1/√H) | normal: N(0, init_std²) weights, zero biases
    init_std: Positive = 0.01
    forget_bias: Float(ge=-MAX_FORGET_BIAS, le=MAX_FORGET_BIAS) = 0.0  # LSTM forget gate's bias: 0 = the original's
    samples: Int(10, MAX_SAMPLES) = 2048
    val_fraction: Float(gt=0, lt=1) = 0.2
    epochs: Int(1, MAX_EPOCHS) = 100
    batch_size: Int(1, MAX_BATCH) = 128
    lr: Positive = 1e-3
    max_grad_norm: Positive = 10.0
    device: Choice(DEVICES) = "auto"  # auto = CUDA when present
    deterministic: bool = False  # torch.use_deterministic_algorithms + no TF32: bit-stable on a GPU, slower

    def __post_init__(self) -> None:
        if self.samples * (self.length + 1) > MAX_DIGITS:
            raise UserError(f"samples × (length + 1) must be at most {MAX_DIGITS:,} digits in memory, got "
                            f"{self.samples:,} × {self.length + 1:,}; use fewer samples or a shorter length")


_EXAMPLE = {"lengths": "5 10", "models": "rnn lstm", "seeds": "0 1 2"}

@settings
class SweepConfig:
    """A palindrome sweep: one run per model × length × seed × grid point, sharing `run`'s other settings.

    `grid` maps other per-run settings to the values to try (`{hidden: [64, 128], lr: [0.001, 0.003]}`);
    the sweep is the Cartesian product of everything, see `runs`."""

    name: Str = "palindrome"
    lengths: Items(Length) = field(default_factory=lambda: [5, 10, 15, 20])
    models: Items(Choice(MODELS)) = field(default_factory=lambda: list(MODELS))
    seeds: Items(Seed) = field(default_factory=lambda: [0])
    grid: Grid = field(default_factory=dict)
    run: PalindromeConfig = field(default_factory=PalindromeConfig)

    def __post_init__(self) -> None:
        check_name("name", self.name)
        for key in ("lengths", "models", "seeds"):
            if not getattr(self, key):
                raise UserError(f"{key} is empty: give at least one value, e.g. --{key} {_EXAMPLE[key]}")
            _once(key, getattr(self, key))
        default = PalindromeConfig()
        for key, flag in SWEEP_AXES.items():  # a single model/length/seed would be silently replaced
            if getattr(self.run, key) != getattr(default, key):
                raise UserError(f"{key}: {getattr(self.run, key)} is ignored by a sweep, which sets {key}s with "
                                f"{flag} ({key}s: [...] in a file)")
        self.runs()  # every combination is validated as the run it becomes

    def check_count(self) -> int:
        """The number of runs the sweep plans, from the lengths of its axes (nothing is expanded): more than
        the cap (MAX_RUNS, or --max-runs) is refused in one line."""
        axes = [len(self.lengths), len(self.models), len(self.seeds)]
        points = math.prod(len(v) if isinstance(v, list) else 1 for v in self.grid.values())
        count, cap = math.prod(axes) * points, max_runs()
        if count > cap:
            grid = f" × {points:,} grid points" if self.grid else ""
            raise UserError(f"{self.name} plans {count:,} runs ({axes[0]:,} length(s) × {axes[1]} model(s) × "
                            f"{axes[2]:,} seed(s){grid}), more than {cap:,}; narrow it, or allow them with "
                            f"--max-runs {count}")
        return count

    def grid_points(self) -> list[dict[str, Any]]:
        self.check_count()
        return grid_points(self.run, self.grid)

    def runs(self) -> list[PalindromeConfig]:
        """lengths × models × grid points × seeds, each a validated per-run config (at most the cap)."""
        return [dataclasses.replace(self.run, **point, model=model, length=length, seed=seed)
                for length, model, point, seed in itertools.product(self.lengths, self.models, self.grid_points(),
                                                                    self.seeds)]


@settings
class GanConfig:
    """One GAN run. Defaults are the seed study's settings (200 epochs, batch 64, Adam 2e-4, latent 100)."""

    dataset: Choice(DATASETS) = "mnist"
    data_dir: Str = "data"  # IDX files: torchvision's layout or a flat folder (plain or .gz)
    download: bool = False  # let torchvision download the files (needs internet)
    limit: Int(0) = 0  # train on the first `limit` images only (0 = all): quick presets and tests
    seed: Seed = 0
    epochs: Int(1, MAX_EPOCHS) = 200
    batch_size: Int(2, MAX_BATCH) = 64  # BatchNorm needs two samples
    latent_dim: Int(1, MAX_LATENT) = 100
    lr: Positive = 2e-4
    beta1: Float(ge=0, lt=1) = 0.5
    beta2: Float(ge=0, lt=1) = 0.999
    log_every: Int(1) = 100  # batches per metrics row (averages over those batches)
    sample_every: Int(1) = 500  # batches between sample grids, all drawn from one fixed z
    grid: Int(1, MAX_GRID) = 5  # sample grids are grid × grid images
    eval_every: Int(0) = 10  # epochs between classifier-FID evaluations (0 = only at the end)
    eval_samples: Int(1, MAX_EVAL_SAMPLES) = 2000  # generated and real images per classifier-FID
    classifier: Str = ""  # classifier checkpoint; "" = <out>/classifiers/<dataset>.pt, trained when missing
    device: Choice(DEVICES) = "auto"
    checkpoint_every: Int(0) = 0  # epochs between checkpoints (0 = auto: every epoch on the CPU, every 10 on a GPU)
    cuda_graphs: Choice(("auto", "off")) = "auto"  # auto: capture the training step as a CUDA graph on a GPU
    deterministic: bool = False  # torch.use_deterministic_algorithms + no TF32: bit-stable on a GPU, slower
    # CUDA training step's float32 matmuls: highest (exact) | high (TF32). Exact until measured on a GPU;
    # FID and deterministic runs are always exact.
    matmul_precision: Choice(("highest", "high")) = "highest"


@settings
class GanSweepConfig:
    """The GAN over seeds × grid points (`lstmgan gan --seeds 0 1 2 --grid lr=1e-4,2e-4`, the study's `gan:`),
    one run each. No seeds: the run's own seed."""

    seeds: Items(Seed) = field(default_factory=list)
    grid: Grid = field(default_factory=dict)
    run: GanConfig = field(default_factory=GanConfig)

    def __post_init__(self) -> None:
        _once("seeds", self.seeds)
        if self.seeds and self.run.seed != GanConfig.seed:
            raise UserError(f"seed: {self.run.seed} is ignored when seeds are given; give the seeds only "
                            f"(--seeds, or seeds: [...] in a file)")
        self.runs()

    def grid_points(self) -> list[dict[str, Any]]:
        return grid_points(self.run, self.grid)

    def runs(self) -> list[GanConfig]:
        """grid points × seeds, each a validated per-run config (at most the cap, checked before expanding)."""
        count = math.prod(len(v) if isinstance(v, list) else 1 for v in self.grid.values()) * max(1, len(self.seeds))
        if count > max_runs():
            raise UserError(f"the GAN plans {count:,} runs (seeds × grid points), more than {max_runs():,}; narrow "
                            f"it, or allow them with --max-runs {count}")
        return [dataclasses.replace(self.run, **point, seed=seed)
                for point, seed in itertools.product(self.grid_points(), self.seeds or [self.run.seed])]


@settings
class AblationConfig:
    """Final val accuracy over lengths × models × initialisation × input encoding × forget-gate bias (× seeds).
    Forget biases vary the LSTM only: an RNN has no forget gate, so its runs would repeat."""

    lengths: Items(Length) = field(default_factory=lambda: [5, 10, 15, 20])
    models: Items(Choice(MODELS)) = field(default_factory=lambda: list(MODELS))
    seeds: Items(Seed) = field(default_factory=lambda: [0, 1, 2])
    inits: Items(Choice(INITS)) = field(default_factory=lambda: list(INITS))
    encodings: Items(Choice(ENCODINGS)) = field(default_factory=lambda: list(ENCODINGS))
    forget_biases: Items(Float(ge=-MAX_FORGET_BIAS, le=MAX_FORGET_BIAS)) = field(default_factory=lambda: [0.0])
    run: PalindromeConfig = field(default_factory=PalindromeConfig)

    def __post_init__(self) -> None:
        for key, example in (("inits", ", ".join(INITS)), ("encodings", ", ".join(ENCODINGS)),
                             ("forget_biases", "0.0, 1.0")):
            if not getattr(self, key):
                raise UserError(f"ablation {key} is empty: give at least one of {example}")
            _once(key, getattr(self, key))
        SweepConfig(name="ablation", lengths=self.lengths, models=self.models, seeds=self.seeds, run=self.run)


@settings
class StudyConfig:
    """Everything the study report needs: the sweep, the ablation, the GAN runs (over `gan.seeds`) and their
    interpolation strips."""

    sweep: SweepConfig = field(default_factory=lambda: SweepConfig(seeds=[0, 1, 2, 3, 4]))
    ablation: AblationConfig = field(default_factory=AblationConfig)
    gan: GanSweepConfig = field(default_factory=GanSweepConfig)
    interpolation_steps: Int(1, 1000) = 7
    interpolation_pairs: Int(0, 100) = 2
    # Both ends of a strip must be read as their class with at least this probability by the classifier.
    interpolation_min_confidence: Float(gt=0, le=1) = 0.9


@settings
class TrackingConfig:
    """Where metrics go besides metrics.jsonl: W&B mode and naming."""

    mode: Choice(WANDB_MODES) = "auto"  # auto: online when logged in or WANDB_API_KEY is set, else offline
    project: Str = "lstmgan"
    entity: Str | None = None
    group: Str | None = None  # --group; default: tracking.group_id(sweep or study folder), one per folder
    job_type: Str | None = None  # the kind of job: palindrome | gan | interpolate | report
    tags: Tags = ()
    system_metrics: bool = True  # W&B's GPU/CPU/memory stats (--no-wandb-system-metrics turns them off)
    artifacts: bool = False  # --wandb-artifacts: GAN checkpoints as W&B artifacts (at the end, or at sync)


RUN_KINDS: dict[type, str] = {PalindromeConfig: "palindrome", GanConfig: "gan"}
# What a stored run config that lacks a key ran with, where that is not today's default: the default changed
# after the key was first recorded (issue 17: the original's scalar input became the default).
ABSENT_MEANS: dict[type, dict[str, Any]] = {PalindromeConfig: {"encoding": "onehot"}}


# --- loading and overrides -------------------------------------------------------------------------


def to_dict(cfg: Any) -> dict[str, Any]:
    """A plain, YAML-safe dict in field order (tuples become lists)."""
    return to_jsonable_python(cfg)


def run_config_dict(cfg: Any) -> dict[str, Any]:
    """What a run folder's config.yaml holds: `kind` and `format` first, then every setting (`to_dict`)."""
    return {"kind": RUN_KINDS[type(cfg)], "format": FORMAT, **to_dict(cfg)}


def run_kind(stored: dict[str, Any]) -> str | None:
    """The kind a stored run config declares (`palindrome`, `gan`); None for folders written before
    `kind` was recorded, whose readers still guess by trying to parse."""
    kind = stored.get("kind")
    return kind if isinstance(kind, str) else None


def from_dict(cls: type[C], data: dict[str, Any], source: str) -> C:
    """Rebuild a config from a dict written by `to_dict` or `run_config_dict` (a run folder's config.yaml).
    A declared kind must be this class's; a newer format than this version writes is refused. A key the
    dict lacks takes the value such a folder ran with (`absent_defaults`)."""
    data = {**ABSENT_MEANS.get(cls, {}), **data}
    if cls in RUN_KINDS:
        kind, version = data.pop("kind", None), data.pop("format", None)
        if kind is not None and kind != RUN_KINDS[cls]:
            raise UserError(f"{source} holds a {kind} run, not a {RUN_KINDS[cls]} run")
        if version is not None and (not isinstance(version, int) or isinstance(version, bool) or version > FORMAT):
            raise UserError(f"{source} has format {version!r}; this lstmgan reads format {FORMAT} and older, "
                            f"upgrade lstmgan to read it")
    return apply(cls(), data, source)


def absent_defaults(cls: type) -> dict[str, Any]:
    """`run_config_dict` of the values a stored run config without a key ran with: today's defaults but for
    ABSENT_MEANS (what rundir's resume check fills a missing key with)."""
    return run_config_dict(from_dict(cls, {}, "defaults"))


def apply(cfg: C, values: dict[str, Any], source: str) -> C:
    """Return a copy of `cfg` with `values` applied and checked; `source` names where they came from in errors.

    A key names a field of `cfg`, a field inside one of its wrapped configs (`epochs` reaches
    `run.epochs` when only one wrapped config has it), or a dotted path (`gan.epochs`). A wrapped
    config's key may also hold a mapping (`sweep: {epochs: 30}` in YAML)."""
    changes: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {}
    current = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}  # type: ignore[arg-type]
    wrapped = [name for name, value in current.items() if dataclasses.is_dataclass(value)]
    for key, value in values.items():
        head, _, rest = key.partition(".")
        if rest and head in wrapped:
            nested.setdefault(head, {})[rest] = value
        elif key in wrapped:
            if not isinstance(value, dict):
                raise UserError(f"{source}: {key} must be a mapping of settings, got {value!r}")
            nested.setdefault(key, {}).update(value)
        elif key in current:
            changes[key] = value
        else:
            inner = [name for name in wrapped if key in _field_names(current[name])]
            if len(inner) > 1:
                raise UserError(f"{source}: {key!r} is ambiguous; write one of "
                                f"{', '.join(f'{name}.{key}' for name in inner)}")
            if not inner:
                known = sorted(k for k in current if k not in wrapped)
                for name in wrapped:
                    known += sorted(_field_names(current[name]))
                raise UserError(f"{source}: unknown key {key!r}; known keys: {', '.join(known)}")
            nested.setdefault(inner[0], {})[key] = value
    for name, sub in nested.items():
        changes[name] = apply(current[name], sub, source)
    cls = type(cfg)
    try:
        if hasattr(cls, "__pydantic_fields__"):
            return cls(**{**current, **changes})  # type: ignore[misc]
        return TypeAdapter(cls).validate_python({**current, **changes})  # a plain dataclass: pydantic's lax rules
    except ValidationError as e:
        raise refusal(e, cls, changes, source) from None


def _field_names(cfg: Any) -> set[str]:
    """Keys that reach a setting of cfg without a dotted path: its own, and its wrapped configs'."""
    names = set()
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        names |= _field_names(value) if dataclasses.is_dataclass(value) else {f.name}
    return names


def _once(key: str, values: list[Any]) -> None:
    seen = set()
    for value in values:
        marker = repr((type(value).__name__, value))
        if marker in seen:
            raise UserError(f"{key} lists {value!r} twice; give each value once")
        seen.add(marker)


def check_name(key: str, value: str) -> None:
    if not value or "/" in value or value.startswith("."):
        raise UserError(f"{key} {value!r} must be a plain folder name (no '/', not starting with '.')")


def grid_points(run: Any, grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """A grid's combinations, in the grid's key order, each value checked and converted as the per-run
    setting of `run` (so `lr: 1e-3` is the float 0.001)."""
    checked: dict[str, list[Any]] = {}
    for key, values in grid.items():
        bare = key.removeprefix("run.")
        if bare in checked:
            raise UserError(f"grid: {bare} is given twice (as {bare} and run.{bare}); give it once")
        checked[bare] = _grid_values(run, key, values, "grid")
    return [dict(zip(checked, combo)) for combo in itertools.product(*checked.values())]


def _grid_values(run: Any, key: str, values: Any, source: str) -> list[Any]:
    """A grid entry's values, each checked and converted by `apply` as the run setting `key`."""
    bare = key.removeprefix("run.")
    if bare in SWEEP_AXES:
        raise UserError(f"{source}: {key} cannot be a grid key: a sweep sets {bare} with {SWEEP_AXES[bare]}")
    if bare not in _field_names(run):
        raise UserError(f"{source}: unknown grid key {key!r}; grid keys are per-run settings: "
                        f"{', '.join(sorted(_field_names(run) - set(SWEEP_AXES)))}")
    if not isinstance(values, list):
        values = [values]  # `grid: {hidden: 64}` is one value
    if not values:
        raise UserError(f"{source}: grid key {key} has no values; give at least one, e.g. {bare}=a,b")
    checked = []
    for value in values:
        try:
            checked.append(getattr(apply(run, {bare: value}, f"{source} {key}"), bare))
        except UserError as e:
            if str(e).startswith(f"{source} {key}:"):  # a value of the wrong type already names its source
                raise
            raise UserError(f"{source} {key}={_text(value)}: {e}") from None
    _once(f"{source} {key}", checked)
    return checked


def _text(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=10**9).strip().removesuffix("...").strip()
