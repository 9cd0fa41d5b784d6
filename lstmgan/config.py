"""Configs: dataclasses with the seed study's defaults, YAML files, `--set key=value` overrides.

Precedence is defaults < YAML < CLI flags < `--set`. Every layer goes through `apply`, which checks
keys and types against the dataclass, so an unknown key or a wrong type is a one-line `UserError`
wherever it comes from. Keys are flat (`epochs: 30`), as users type them; a config that wraps a
per-run config (a sweep wraps a `PalindromeConfig`) resolves a key on itself first, then on the
wrapped one (`--set epochs=30` and `--set run.epochs=30` are the same).

Every number has a rule (`validate`): a lower bound where smaller makes no run (0 epochs), and an upper
bound where a larger value would only die later in the allocator or run for ever; a refusal names it.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
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
DATASETS = ("mnist", "fashion-mnist")  # the one list of GAN datasets; gan/data.py maps them to torchvision

# Seeds go to torch.manual_seed and numpy; both take any non-negative 64-bit integer, and < 2**63 also fits
# the signed integers of JSON readers and W&B.
MAX_SEED = 2**63 - 1
# Upper bounds far beyond any study, below the sizes that only fail later (out of memory or never ending).
MAX_EPOCHS = 1_000_000  # one metrics row per epoch: more would be a typo, not an experiment
MAX_LENGTH = 10_000  # the RNN steps through the sequence in Python: 10k steps per batch is already hours
MAX_HIDDEN = 8192  # an LSTM of 8192 units holds 4·8192² ≈ 270M weights (≈ 3 GB with gradients and RMSprop)
MAX_SAMPLES = 10_000_000  # palindromes are held in memory as int64 digits, samples × (length + 1) of them
MAX_DIGITS = 500_000_000  # samples × (length + 1): 4 GB of int64 digits, before one-hot encoding per batch
MAX_BATCH = 1_000_000  # a batch's activations (and a GAN batch's images) must fit in one device's memory
MAX_LATENT = 65_536  # the generator's first layer is latent_dim × 256 weights
MAX_EVAL_SAMPLES = 1_000_000  # generated images per classifier-FID (28×28 floats: 3 GB at the bound)
MAX_GRID = 100  # a sample grid of grid × grid images: 10,000 images, a 2800-pixel PNG at the bound

# What each run's stored config (config.yaml) records besides its settings: the kind of run, so readers
# branch on it instead of guessing, and the format of the file, so a later change can be read or refused.
FORMAT = 1


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
        _between("seed", self.seed, 0, MAX_SEED)
        _between("length", self.length, 1, MAX_LENGTH)
        _between("hidden", self.hidden, 1, MAX_HIDDEN)
        _between("samples", self.samples, 10, MAX_SAMPLES)
        _between("epochs", self.epochs, 1, MAX_EPOCHS)
        _between("batch_size", self.batch_size, 1, MAX_BATCH)
        if self.samples * (self.length + 1) > MAX_DIGITS:
            raise UserError(f"samples × (length + 1) must be at most {MAX_DIGITS:,} digits in memory, got "
                            f"{self.samples:,} × {self.length + 1:,}; use fewer samples or a shorter length")
        _positive("lr", self.lr)
        _positive("init_std", self.init_std)
        _positive("max_grad_norm", self.max_grad_norm)
        if not 0 < self.val_fraction < 1:
            raise UserError(f"val_fraction must be between 0 and 1 (exclusive), got {self.val_fraction}")


# The settings a sweep varies through its own lists; a grid or `--set` cannot vary them as well.
SWEEP_AXES = {"model": "--models", "length": "--lengths", "seed": "--seeds"}


@dataclass(frozen=True)
class SweepConfig:
    """A palindrome sweep: one run per model × length × seed × grid point, sharing `run`'s other settings.

    `grid` maps other per-run settings to the values to try (`{hidden: [64, 128], lr: [0.001, 0.003]}`);
    the sweep is the Cartesian product of everything, see `runs`."""

    name: str = "palindrome"
    lengths: list[int] = field(default_factory=lambda: [5, 10, 15, 20])
    models: list[str] = field(default_factory=lambda: list(MODELS))
    seeds: list[int] = field(default_factory=lambda: [0])
    grid: dict[str, list[Any]] = field(default_factory=dict)
    run: PalindromeConfig = field(default_factory=PalindromeConfig)

    def validate(self) -> None:
        check_name("name", self.name)
        for key in ("lengths", "models", "seeds"):
            values = getattr(self, key)
            if not values:
                raise UserError(f"{key} is empty: give at least one value, e.g. --{key} {_EXAMPLE[key]}")
            _once(key, values)
        for model in self.models:
            _choice("model", model, MODELS)
        default = PalindromeConfig()
        for key, flag in SWEEP_AXES.items():  # a single model/length/seed would be silently replaced
            if getattr(self.run, key) != getattr(default, key):
                raise UserError(f"{key}: {getattr(self.run, key)} is ignored by a sweep, which sets {key}s with "
                                f"{flag} ({key}s: [...] in a file)")
        self.runs()  # every combination is validated as the run it becomes

    def grid_points(self) -> list[dict[str, Any]]:
        """The grid's combinations, in the grid's key order, each value checked and converted by `apply`
        (so `lr: 1e-3` is the float 0.001)."""
        checked: dict[str, list[Any]] = {}
        for key, values in self.grid.items():
            bare = key.removeprefix("run.")
            if bare in checked:
                raise UserError(f"grid: {bare} is given twice (as {bare} and run.{bare}); give it once")
            checked[bare] = _grid_values(self.run, key, values, "grid")
        return [dict(zip(checked, combo)) for combo in itertools.product(*checked.values())]

    def runs(self) -> list[PalindromeConfig]:
        """lengths × models × grid points × seeds, each a validated per-run config."""
        out = []
        for length, model, point, seed in itertools.product(self.lengths, self.models, self.grid_points(),
                                                             self.seeds):
            cfg = dataclasses.replace(self.run, **point, model=model, length=length, seed=seed)
            cfg.validate()
            out.append(cfg)
        return out


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
    # CUDA training step's float32 matmuls: highest (exact) | high (TF32). Exact until measured on a GPU;
    # FID and deterministic runs are always exact.
    matmul_precision: str = "highest"

    def validate(self) -> None:
        _choice("dataset", self.dataset, DATASETS)
        _choice("device", self.device, DEVICES)
        _between("seed", self.seed, 0, MAX_SEED)
        _between("epochs", self.epochs, 1, MAX_EPOCHS)
        _at_least("limit", self.limit, 0)
        _at_least("eval_every", self.eval_every, 0)
        _at_least("checkpoint_every", self.checkpoint_every, 0)
        _choice("cuda_graphs", self.cuda_graphs, ("auto", "off"))
        _choice("matmul_precision", self.matmul_precision, ("highest", "high"))
        for key in ("log_every", "sample_every"):
            _at_least(key, getattr(self, key), 1)
        _between("batch_size", self.batch_size, 2, MAX_BATCH)  # BatchNorm needs two samples
        _between("latent_dim", self.latent_dim, 1, MAX_LATENT)
        _between("grid", self.grid, 1, MAX_GRID)
        _between("eval_samples", self.eval_samples, 1, MAX_EVAL_SAMPLES)
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
        for key, values, choices in (("inits", self.inits, INITS), ("encodings", self.encodings, ENCODINGS)):
            if not values:
                raise UserError(f"ablation {key} is empty: give at least one of {', '.join(choices)}")
            _once(key, values)
            for value in values:
                _choice(key[:-1], value, choices)
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
    # Both ends of a strip must be read as their class with at least this probability by the classifier.
    interpolation_min_confidence: float = 0.9

    def validate(self) -> None:
        self.sweep.validate()
        self.ablation.validate()
        self.gan.validate()
        _between("interpolation_steps", self.interpolation_steps, 1, 1000)
        _between("interpolation_pairs", self.interpolation_pairs, 0, 100)
        if not 0 < self.interpolation_min_confidence <= 1:
            raise UserError(f"interpolation_min_confidence must be in (0, 1], got {self.interpolation_min_confidence}")


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


MAX_CONFIG_BYTES = 4 * 1024 * 1024  # job files are a few KB; a bigger "config" is the wrong file (or a log)


def load_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping; a missing, unreadable, binary, huge or malformed file is a UserError."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"config {path} is a folder; give a YAML file")
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as e:
        raise UserError(f"cannot read config {path}: {e.strerror}; check the path given to --config") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise UserError(f"config {path} is larger than {MAX_CONFIG_BYTES // 2**20} MB; give a YAML file of settings")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = "\0"
    if "\0" in text:  # NUL is valid UTF-8 but never text
        raise UserError(f"config {path} is not a UTF-8 text file; give a YAML file")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise UserError(f"{path}{where} is not valid YAML: {problem}; fix the file") from None
    except RecursionError:
        raise UserError(f"{path} is nested too deeply to be a config; fix the file") from None
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


def parse_grid(items: list[str] | None) -> dict[str, list[Any]]:
    """`--grid key=v1,v2` items into {key: [v1, v2]} for a sweep's grid. Values are read as YAML scalars,
    as with `--set`, then checked and converted as that per-run setting (`lr=1e-3` → 0.001). Keys must be
    per-run settings other than the sweep's own axes (model, length, seed)."""
    out: dict[str, list[Any]] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UserError(f"--grid {item!r} needs the form key=value,value, e.g. --grid hidden=64,128")
        if key.removeprefix("run.") in out:
            raise UserError(f"--grid {key} is given twice; list its values once: --grid {key}=a,b")
        values = []
        for piece in raw.split(","):
            if not piece.strip():
                raise UserError(f"--grid {item!r} has an empty value; separate values by single commas, "
                                f"e.g. --grid {key}=64,128")
            try:
                values.append(yaml.safe_load(piece))
            except yaml.YAMLError:
                values.append(piece.strip())
        out[key.removeprefix("run.")] = _grid_values(PalindromeConfig(), key, values, "--grid")
    return out


def _grid_values(run: PalindromeConfig, key: str, values: Any, source: str) -> list[Any]:
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
        one = apply(run, {bare: value}, f"{source} {key}")
        try:
            one.validate()
        except UserError as e:
            raise UserError(f"{source} {key}={_text(value)}: {e}") from None
        checked.append(getattr(one, bare))
    _once(f"{source} {key}", checked)
    return checked


def refuse_owned_sets(sets: dict[str, Any], owned: dict[str, str], command: str = "") -> None:
    """Refuse `--set` keys that a command sets through its own flags (owned maps key → flag), which would
    otherwise be silently overridden: `--set model=lstm` under `sweep`, whose runs' model comes from
    --models. Dotted forms (`run.model`) are refused as well."""
    for key, value in sets.items():
        bare = key.rpartition(".")[2]
        if bare in owned:
            where = f" under {command}" if command else ""
            raise UserError(f"--set {key}={_text(value)} is refused{where}: {bare} is set with {owned[bare]}; "
                            f"use {owned[bare]} instead")


def _text(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=10**9).strip().removesuffix("...").strip()


def apply(cfg: C, values: dict[str, Any], source: str) -> C:
    """Return a copy of `cfg` with `values` applied; `source` names where they came from in errors.

    A key names a field of `cfg`, a field inside one of its wrapped configs (`epochs` reaches
    `run.epochs` when only one wrapped config has it), or a dotted path (`gan.epochs`). A wrapped
    config's key may also hold a mapping (`sweep: {epochs: 30}` in YAML)."""
    changes: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {}
    own = {f.name: f for f in dataclasses.fields(cfg)}
    hints = _hints(type(cfg))
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
            changes[key] = _coerce(hints[key], value, key, source)
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
    A declared kind must be this class's; a newer format than this version writes is refused."""
    data = dict(data)
    if cls in RUN_KINDS:
        kind, version = data.pop("kind", None), data.pop("format", None)
        if kind is not None and kind != RUN_KINDS[cls]:
            raise UserError(f"{source} holds a {kind} run, not a {RUN_KINDS[cls]} run")
        if version is not None and (not isinstance(version, int) or isinstance(version, bool) or version > FORMAT):
            raise UserError(f"{source} has format {version!r}; this lstmgan reads format {FORMAT} and older, "
                            f"upgrade lstmgan to read it")
    return apply(cls(), data, source)


def build(cls: type[C], *, yaml_path: Path | None, flags: dict[str, Any], sets: list[str] | None) -> C:
    """defaults < YAML < CLI flags (None = not given) < --set, then validated."""
    cfg = cls()
    if yaml_path is not None:
        from lstmgan.catalog import find  # a packaged name (`palindrome-sweep`) or a path

        yaml_path = find(yaml_path, "job")
        cfg = apply(cfg, load_yaml(yaml_path), str(yaml_path))
    cfg = apply(cfg, {k: v for k, v in flags.items() if v is not None}, "command line")
    cfg = apply(cfg, parse_sets(sets), "--set")
    cfg.validate()  # type: ignore[attr-defined]
    return cfg


# --- type coercion and checks ------------------------------------------------------------------------

RUN_KINDS: dict[type, str] = {PalindromeConfig: "palindrome", GanConfig: "gan"}


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    """A dataclass's field types, resolved (`from __future__ import annotations` leaves strings)."""
    return typing.get_type_hints(cls)


def _field_names(cfg: Any) -> set[str]:
    """Keys that reach a setting of cfg without a dotted path: its own, and its wrapped configs'."""
    names = set()
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        names |= _field_names(value) if dataclasses.is_dataclass(value) else {f.name}
    return names


def _coerce(hint: Any, value: Any, key: str, source: str) -> Any:
    ok, out = _check(hint, value)
    if not ok:
        raise UserError(f"{source}: {key} must be {_describe(hint)}, got {value!r}")
    return out


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
    if origin is dict:  # a sweep's grid: {key: [values]}; the values are checked against the run config later
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            return False, None
        return True, {k: v if isinstance(v, list) else [v] for k, v in value.items()}
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
        if isinstance(value, bool):  # YAML 1.1 reads a bare off/on as false/true: `cuda_graphs: off`
            return True, "on" if value else "off"
        if isinstance(value, (int, float)):
            return True, str(value)  # `--set name=2024` is a name, not a number
        return isinstance(value, str), value
    return True, value


def _describe(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(hint))
    if origin in (list, tuple):
        return f"a list of {_describe(typing.get_args(hint)[0])} values"
    if origin is dict:
        return "a mapping of setting: [values]"
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false", type(None): "null"}
    return names.get(hint, str(hint))


def _choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise UserError(f"unknown {key} {value!r}; choose one of: {', '.join(choices)}")


def _at_least(key: str, value: int, low: int) -> None:
    if value < low:
        raise UserError(f"{key} must be at least {low}, got {value}")


def _between(key: str, value: int, low: int, high: int) -> None:
    _at_least(key, value, low)
    if value > high:
        raise UserError(f"{key} must be at most {high:,}, got {value}")


def _once(key: str, values: list[Any]) -> None:
    seen = set()
    for value in values:
        marker = repr((type(value).__name__, value))
        if marker in seen:
            raise UserError(f"{key} lists {value!r} twice; give each value once")
        seen.add(marker)


def _positive(key: str, value: float) -> None:
    if not (value > 0 and math.isfinite(value)):
        raise UserError(f"{key} must be a positive finite number, got {value}")


def check_name(key: str, value: str) -> None:
    if not value or "/" in value or value.startswith("."):
        raise UserError(f"{key} {value!r} must be a plain folder name (no '/', not starting with '.')")
