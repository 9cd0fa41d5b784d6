"""Configs: dataclasses with the seed study's defaults, YAML files, `--set key=value` overrides.

Precedence is defaults < YAML < CLI flags < `--set`. Every layer goes through `apply`, which checks
keys and types against the dataclass, so an unknown key or a wrong type is a one-line `UserError`
wherever it comes from. Keys are flat (`epochs: 30`), as users type them; a config that wraps a
per-run config (a sweep wraps a `PalindromeConfig`) resolves a key on itself first, then on the
wrapped one (`--set epochs=30` and `--set run.epochs=30` are the same).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from lstmgan.errors import UserError

C = TypeVar("C")

MODELS = ("rnn", "lstm")
ENCODINGS = ("onehot", "scalar")
INITS = ("pytorch", "normal")
DEVICES = ("auto", "cpu", "cuda")
WANDB_MODES = ("auto", "online", "offline", "disabled")


@dataclass(frozen=True)
class PalindromeConfig:
    """One palindrome run. Defaults are the seed study's settings."""

    model: str = "lstm"  # rnn | lstm
    length: int = 10  # digits the network reads; the palindrome has length + 1 digits
    seed: int = 0
    hidden: int = 128
    encoding: str = "onehot"  # onehot (10 dims) | scalar (the digit as one float, the template's input_dim=1)
    init: str = "pytorch"  # pytorch: U(±1/√H) | normal: N(0, init_std²) weights, zero biases
    init_std: float = 0.01
    samples: int = 2048
    val_fraction: float = 0.2
    epochs: int = 100
    batch_size: int = 128
    lr: float = 1e-3
    max_grad_norm: float = 10.0
    device: str = "auto"  # auto = CUDA when present
    deterministic: bool = False  # torch.use_deterministic_algorithms + no TF32: bit-stable on a GPU, slower

    def validate(self) -> None:
        _choice("model", self.model, MODELS)
        _choice("encoding", self.encoding, ENCODINGS)
        _choice("init", self.init, INITS)
        _choice("device", self.device, DEVICES)
        _at_least("length", self.length, 1)
        _at_least("hidden", self.hidden, 1)
        _at_least("samples", self.samples, 10)
        _at_least("epochs", self.epochs, 0)
        _at_least("batch_size", self.batch_size, 1)
        _positive("lr", self.lr)
        _positive("init_std", self.init_std)
        _positive("max_grad_norm", self.max_grad_norm)
        if not 0 < self.val_fraction < 1:
            raise UserError(f"val_fraction must be between 0 and 1 (exclusive), got {self.val_fraction}")


@dataclass(frozen=True)
class SweepConfig:
    """A palindrome sweep: one run per model × length × seed, all sharing `run`'s other settings."""

    name: str = "palindrome"
    lengths: list[int] = field(default_factory=lambda: [5, 10, 15, 20])
    models: list[str] = field(default_factory=lambda: list(MODELS))
    seeds: list[int] = field(default_factory=lambda: [0])
    run: PalindromeConfig = field(default_factory=PalindromeConfig)

    def validate(self) -> None:
        _name("name", self.name)
        for key in ("lengths", "models", "seeds"):
            if not getattr(self, key):
                raise UserError(f"{key} is empty: give at least one value, e.g. --{key} {_EXAMPLE[key]}")
        for length in self.lengths:
            _at_least("length", length, 1)
        for model in self.models:
            _choice("model", model, MODELS)
        self.run.validate()


DATASETS = ("mnist", "fashion-mnist")


@dataclass(frozen=True)
class GanConfig:
    """One GAN run. Defaults are the seed study's settings (200 epochs, batch 64, Adam 2e-4, latent 100)."""

    dataset: str = "mnist"  # mnist | fashion-mnist
    data_dir: str = "data"  # IDX files: torchvision's layout or a flat folder (plain or .gz)
    download: bool = False  # let torchvision download the files (needs internet)
    limit: int = 0  # train on the first `limit` images only (0 = all): quick presets and tests
    seed: int = 0
    epochs: int = 200
    batch_size: int = 64
    latent_dim: int = 100
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    log_every: int = 100  # batches per metrics row (averages over those batches)
    sample_every: int = 500  # batches between sample grids, all drawn from one fixed z
    grid: int = 5  # sample grids are grid × grid images
    eval_every: int = 10  # epochs between classifier-FID evaluations (0 = only at the end)
    eval_samples: int = 2000  # generated and real images per classifier-FID
    classifier: str = ""  # classifier checkpoint; "" = <out>/classifiers/<dataset>.pt, trained when missing
    device: str = "auto"
    checkpoint_every: int = 0  # epochs between checkpoints (0 = auto: every epoch on the CPU, every 10 on a GPU)
    cuda_graphs: str = "auto"  # auto: capture the training step as a CUDA graph on a GPU | off: eager
    deterministic: bool = False  # torch.use_deterministic_algorithms + no TF32: bit-stable on a GPU, slower

    def validate(self) -> None:
        _choice("dataset", self.dataset, DATASETS)
        _choice("device", self.device, DEVICES)
        _at_least("epochs", self.epochs, 0)
        _at_least("limit", self.limit, 0)
        _at_least("eval_every", self.eval_every, 0)
        _at_least("checkpoint_every", self.checkpoint_every, 0)
        _choice("cuda_graphs", self.cuda_graphs, ("auto", "off"))
        for key in ("batch_size", "latent_dim", "log_every", "sample_every", "grid", "eval_samples"):
            _at_least(key, getattr(self, key), 1)
        _at_least("batch_size", self.batch_size, 2)  # BatchNorm needs two samples
        _positive("lr", self.lr)
        for key in ("beta1", "beta2"):
            if not 0 <= getattr(self, key) < 1:
                raise UserError(f"{key} must be in [0, 1), got {getattr(self, key)}")


@dataclass(frozen=True)
class AblationConfig:
    """Final val accuracy over lengths × models × initialisation × input encoding (× seeds)."""

    lengths: list[int] = field(default_factory=lambda: [5, 10, 15, 20])
    models: list[str] = field(default_factory=lambda: list(MODELS))
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    inits: list[str] = field(default_factory=lambda: list(INITS))
    encodings: list[str] = field(default_factory=lambda: list(ENCODINGS))
    run: PalindromeConfig = field(default_factory=PalindromeConfig)

    def validate(self) -> None:
        for value in self.inits:
            _choice("init", value, INITS)
        for value in self.encodings:
            _choice("encoding", value, ENCODINGS)
        SweepConfig(name="ablation", lengths=self.lengths, models=self.models, seeds=self.seeds,
                    run=self.run).validate()


@dataclass(frozen=True)
class StudyConfig:
    """Everything the study report needs: the sweep, the ablation, one GAN run and its interpolation."""

    sweep: SweepConfig = field(default_factory=lambda: SweepConfig(seeds=[0, 1, 2, 3, 4]))
    ablation: AblationConfig = field(default_factory=AblationConfig)
    gan: GanConfig = field(default_factory=GanConfig)
    interpolation_steps: int = 7
    interpolation_pairs: int = 2

    def validate(self) -> None:
        self.sweep.validate()
        self.ablation.validate()
        self.gan.validate()
        _at_least("interpolation_steps", self.interpolation_steps, 1)
        _at_least("interpolation_pairs", self.interpolation_pairs, 0)


_EXAMPLE = {"lengths": "5 10", "models": "rnn lstm", "seeds": "0 1 2"}


@dataclass(frozen=True)
class TrackingConfig:
    """Where metrics go besides metrics.jsonl: W&B mode and naming."""

    mode: str = "auto"  # auto: online when logged in or WANDB_API_KEY is set, else offline
    project: str = "lstmgan"
    entity: str | None = None
    group: str | None = None  # --group; default: tracking.group_id(sweep or study folder), one per folder
    job_type: str | None = None  # the kind of job: palindrome | gan | interpolate | report
    tags: tuple[str, ...] = ()
    system_metrics: bool = True  # W&B's GPU/CPU/memory stats (--no-wandb-system-metrics turns them off)
    artifacts: bool = False  # --wandb-artifacts: GAN checkpoints as W&B artifacts (at the end, or at sync)

    def validate(self) -> None:
        _choice("--wandb", self.mode, WANDB_MODES)


# --- loading and overrides -------------------------------------------------------------------------


def load_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping; a missing, unreadable or malformed file is a UserError."""
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise UserError(f"cannot read config {path}: {e.strerror}; check the path given to --config") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise UserError(f"{path}{where} is not valid YAML: {getattr(e, 'problem', e)}; fix the file") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{path} must hold a mapping of key: value lines, not a {type(data).__name__}")
    return data


def parse_sets(items: list[str] | None) -> dict[str, Any]:
    """`--set key=value` items into a dict; values are parsed as YAML scalars (30 → int, [1,2] → list)."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set {item!r} needs the form key=value, e.g. --set epochs=30")
        try:
            out[key.strip()] = yaml.safe_load(raw) if raw.strip() else raw
        except yaml.YAMLError:
            out[key.strip()] = raw
    return out


def apply(cfg: C, values: dict[str, Any], source: str) -> C:
    """Return a copy of `cfg` with `values` applied; `source` names where they came from in errors.

    A key names a field of `cfg`, a field inside one of its wrapped configs (`epochs` reaches
    `run.epochs` when only one wrapped config has it), or a dotted path (`gan.epochs`). A wrapped
    config's key may also hold a mapping (`sweep: {epochs: 30}` in YAML)."""
    changes: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {}
    own = {f.name: f for f in dataclasses.fields(cfg)}
    wrapped = [name for name in own if dataclasses.is_dataclass(getattr(cfg, name))]
    for key, value in values.items():
        head, _, rest = key.partition(".")
        if rest and head in wrapped:
            nested.setdefault(head, {})[rest] = value
        elif key in wrapped:
            if not isinstance(value, dict):
                raise UserError(f"{source}: {key} must be a mapping of settings, got {value!r}")
            nested.setdefault(key, {}).update(value)
        elif key in own:
            changes[key] = _coerce(own[key].type, value, key, source)
        else:
            inner = [name for name in wrapped if key in _field_names(getattr(cfg, name))]
            if len(inner) > 1:
                raise UserError(f"{source}: {key!r} is ambiguous; write one of "
                                f"{', '.join(f'{name}.{key}' for name in inner)}")
            if not inner:
                known = sorted(k for k in own if k not in wrapped)
                for name in wrapped:
                    known += sorted(_field_names(getattr(cfg, name)))
                raise UserError(f"{source}: unknown key {key!r}; known keys: {', '.join(known)}")
            nested.setdefault(inner[0], {})[key] = value
    for name, sub in nested.items():
        changes[name] = apply(getattr(cfg, name), sub, source)
    return dataclasses.replace(cfg, **changes)


def to_dict(cfg: Any) -> dict[str, Any]:
    """A plain, YAML-safe dict (tuples become lists)."""
    def plain(v: Any) -> Any:
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v
    return plain(dataclasses.asdict(cfg))


def from_dict(cls: type[C], data: dict[str, Any], source: str) -> C:
    """Rebuild a config from a dict written by `to_dict` (e.g. a run directory's config.yaml)."""
    return apply(cls(), data, source)


def build(cls: type[C], *, yaml_path: Path | None, flags: dict[str, Any], sets: list[str] | None) -> C:
    """defaults < YAML < CLI flags (None = not given) < --set, then validated."""
    cfg = cls()
    if yaml_path is not None:
        cfg = apply(cfg, load_yaml(yaml_path), str(yaml_path))
    cfg = apply(cfg, {k: v for k, v in flags.items() if v is not None}, "command line")
    cfg = apply(cfg, parse_sets(sets), "--set")
    cfg.validate()  # type: ignore[attr-defined]
    return cfg


# --- type coercion and checks ------------------------------------------------------------------------

def _field_names(cfg: Any) -> set[str]:
    """Keys that reach a setting of cfg without a dotted path: its own, and its wrapped configs'."""
    names = set()
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        names |= _field_names(value) if dataclasses.is_dataclass(value) else {f.name}
    return names


def _coerce(annotation: Any, value: Any, key: str, source: str) -> Any:
    hint = _resolve(annotation)
    ok, out = _check(hint, value)
    if not ok:
        raise UserError(f"{source}: {key} must be {_describe(hint)}, got {value!r}")
    return out


def _resolve(annotation: Any) -> Any:
    if isinstance(annotation, str):  # `from __future__ import annotations` leaves strings
        return eval(annotation, {**vars(typing), **globals(), "list": list, "tuple": tuple})  # noqa: S307
    return annotation


def _check(hint: Any, value: Any) -> tuple[bool, Any]:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(hint):
            ok, out = _check(arg, value)
            if ok:
                return True, out
        return False, None
    if hint is type(None):
        return value is None, None
    if origin in (list, tuple):
        if isinstance(value, (int, float, str)) and not isinstance(value, bool):
            value = [value]  # `--set seeds=3` means [3]
        if not isinstance(value, (list, tuple)):
            return False, None
        (item,) = typing.get_args(hint)[:1]
        items = [_check(item, v) for v in value]
        if not all(ok for ok, _ in items):
            return False, None
        seq = [v for _, v in items]
        return True, (tuple(seq) if origin is tuple else seq)
    if hint is bool:
        return isinstance(value, bool), value
    if hint is int:
        return (isinstance(value, int) and not isinstance(value, bool)), value
    if hint is float:
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
            try:
                return True, float(value)
            except ValueError:
                return False, None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return True, float(value)
        return False, None
    if hint is str:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return True, str(value)  # `--set name=2024` is a name, not a number
        return isinstance(value, str), value
    return True, value


def _describe(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(hint))
    if origin in (list, tuple):
        return f"a list of {_describe(typing.get_args(hint)[0])} values"
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false", type(None): "null"}
    return names.get(hint, str(hint))


def _choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise UserError(f"unknown {key} {value!r}; choose one of: {', '.join(choices)}")


def _at_least(key: str, value: int, low: int) -> None:
    if value < low:
        raise UserError(f"{key} must be at least {low}, got {value}")


def _positive(key: str, value: float) -> None:
    if not value > 0:
        raise UserError(f"{key} must be positive, got {value}")


def _name(key: str, value: str) -> None:
    if not value or "/" in value or value.startswith("."):
        raise UserError(f"{key} {value!r} must be a plain folder name (no '/', not starting with '.')")
