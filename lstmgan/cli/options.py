"""The CLI's option sets: the choices (typer's choice type over the config's values), the options of the
training commands (`Options`, `SlurmOptions`) and `with_options`, which gives a command a dataclass's fields
as flags and hands them over as one object.

Only typer, the standard library and light lstmgan modules are imported here (`--help` must answer at once).
"""

from __future__ import annotations

import copy
import dataclasses
import enum
import functools
import inspect as pyinspect
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from lstmgan import catalog
from lstmgan.choices import DATASETS, DEVICES, MAX_RUNS, MAX_SEED, MODELS, WANDB_MODES, allow_runs
from lstmgan.errors import UserError
from lstmgan.pipeline import Flow, SlurmRequest

if TYPE_CHECKING:
    from lstmgan.config import TrackingConfig

TRAINING, OUTPUT, WANDB, SLURM = "Training", "Output", "W&B", "SLURM"  # help panels of the training commands

# A flag takes no value, so --help shows no type for it (typer labels every flag `<bool>`).
_value_label = typer.core.TyperOption.display_type_rich
typer.core.TyperOption.display_type_rich = (  # type: ignore[method-assign]
    lambda self, ctx: None if self.is_bool_flag else _value_label(self, ctx))

# --- choices ------------------------------------------------------------------------------------------------------

NOUNS: dict[Any, str] = {}  # choice type → what its values are, for `unknown <noun> 'x' for --flag`


def choice(name: str, noun: str, values: Sequence[str]) -> Any:
    """Typer's choice type, a str Enum of `values` (typer parses, checks, completes and lists them in --help);
    the values stay the config's one source."""
    kind = enum.Enum(name, [(v, v) for v in values], type=str)
    NOUNS[kind] = noun
    return kind


Model = choice("Model", "model", MODELS)
Device = choice("Device", "device", DEVICES)
WandbMode = choice("WandbMode", "W&B mode", WANDB_MODES)
Dataset = choice("Dataset", "dataset", DATASETS)
Method = choice("Method", "interpolation method", ("lerp", "slerp"))
# slurm.RUNTIMES, restated: importing lstmgan.runner.slurm loads submitit
Runtime = choice("Runtime", "container runtime", ("none", "apptainer", "singularity", "pyxis"))


def value(member: Any) -> Any:
    """A choice's value (None stays None: the flag was not given)."""
    return None if member is None else member.value


def torch_device(member: Any) -> Any:
    """The torch.device of a --device choice (torch loads here, when a command runs, not with the CLI)."""
    from lstmgan.runner.job import resolve_device

    return resolve_device(value(member))


def choice_error(e: typer.TyperException) -> str | None:
    """`unknown model 'gru' for --model; choose one of: rnn, lstm` when `e` is typer refusing a choice."""
    param = getattr(e, "param", None)
    kind = getattr(getattr(param, "type_descriptor", None), "annotation", None)
    if typing.get_origin(kind) is list:
        kind = typing.get_args(kind)[0]
    errors = getattr(e.__cause__, "errors", None)  # typer checks a value with pydantic, which keeps the input
    if kind not in NOUNS or errors is None or not errors():
        return None
    allowed = ", ".join(member.value for member in kind)
    return f"unknown {NOUNS[kind]} {errors()[0]['input']!r} for {param.opts[0]}; choose one of: {allowed}"


def require(ok: bool, flag: str, rule: str, got: Any, hint: str = "") -> None:
    """A flag's value outside its rule: `--steps must be at least 1, got 0`."""
    if not ok:
        raise UserError(f"{flag} must be {rule}, got {got}{hint}")


def check_seed(seed: int) -> None:
    require(0 <= seed <= MAX_SEED, "--seed", f"between 0 and {MAX_SEED}", seed)


# --- options shared by the training commands ----------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    """The options of palindrome, sweep, gan and study, received by each as one `opts` argument."""

    config: Annotated[str | None, typer.Option(
        "--config", help="A packaged job (see `lstmgan configs`) or a YAML file.", rich_help_panel=TRAINING)] = None
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="key=value override, repeatable; wins over all.", rich_help_panel=TRAINING)] = None
    device: Annotated[Device | None, typer.Option(
        "--device", help="auto = CUDA when present (default: the config's, auto).", rich_help_panel=TRAINING)] = None
    jobs: Annotated[int | None, typer.Option(
        "--jobs", help="Runs trained side by side in local processes (default: one per CPU core; 1 on a GPU).",
        rich_help_panel=TRAINING)] = None
    max_runs: Annotated[int, typer.Option(
        "--max-runs", min=1, callback=allow_runs, help="The most runs the command may plan (a guard against a "
        "typo in --grid).", show_default=True, rich_help_panel=TRAINING)] = MAX_RUNS
    out: Annotated[Path, typer.Option(
        "--out", help="Folder that holds sweep/run folders.", show_default=True, rich_help_panel=OUTPUT)] = Path("runs")
    name: Annotated[str | None, typer.Option(
        "--name", help="Sweep name: runs go to OUT/NAME/ (default: the config's, palindrome).",
        rich_help_panel=OUTPUT)] = None
    force: Annotated[bool, typer.Option(
        "--force", help="Start over even if the run folder holds a run.", rich_help_panel=OUTPUT)] = False
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress display.", rich_help_panel=OUTPUT)] = False
    print_config: Annotated[bool, typer.Option(
        "--print-config", help="Print the resolved config as YAML; run and write nothing.",
        rich_help_panel=OUTPUT)] = False
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="List the runs that would train, resume or be skipped (with --slurm: print the sbatch "
        "script); run and write nothing.", rich_help_panel=OUTPUT)] = False
    wandb: Annotated[WandbMode, typer.Option(
        "--wandb", help="auto | online | offline | disabled; auto: online if logged in, else offline.",
        show_default=True, metavar="MODE",
        rich_help_panel=WANDB)] = WandbMode.auto
    wandb_project: Annotated[str, typer.Option(
        "--wandb-project", help="W&B project.", show_default=True, rich_help_panel=WANDB)] = "lstmgan"
    wandb_entity: Annotated[str | None, typer.Option(
        "--wandb-entity", help="W&B entity (team or user).", rich_help_panel=WANDB)] = None
    group: Annotated[str | None, typer.Option(
        "--group", help="W&B group (default: one per sweep/study folder, kept in its wandb-group file).",
        rich_help_panel=WANDB)] = None
    wandb_system_metrics: Annotated[bool, typer.Option(
        "--wandb-system-metrics/--no-wandb-system-metrics", help="Log GPU/CPU utilisation and memory to W&B "
        "(default: on).", show_default=False, rich_help_panel=WANDB)] = True
    wandb_artifacts: Annotated[bool, typer.Option(
        "--wandb-artifacts", help="Log GAN checkpoints as W&B artifacts (at the end of a run, or at sync).",
        rich_help_panel=WANDB)] = False

    def folder(self, default: str) -> str:
        """--name, checked like a sweep's name: one plain folder under --out."""
        from lstmgan.config import check_name

        name = default if self.name is None else self.name
        check_name("--name", name)
        return name

    def config_file(self) -> Path | None:
        return catalog.find(self.config, "job") if self.config else None

    def sets(self, owned: dict[str, str], command: str = "") -> list[str] | None:
        """--set items, refused where the command sets that key through a flag of its own."""
        from lstmgan.overrides import parse_sets, refuse_owned_sets

        refuse_owned_sets(parse_sets(self.set_), owned, command)
        return self.set_

    def tracking(self) -> TrackingConfig:
        from lstmgan.config import TrackingConfig

        return TrackingConfig(mode=value(self.wandb), project=self.wandb_project, entity=self.wandb_entity,
                              group=self.group, system_metrics=self.wandb_system_metrics,
                              artifacts=self.wandb_artifacts)

    def flow(self, slurm: SlurmOptions) -> Flow:
        """What the pipeline does with the jobs; the SLURM flags are checked here, after the config."""
        return Flow(self.out, print_config=self.print_config, dry_run=self.dry_run, quiet=self.quiet,
                    slurm=slurm.request())


@dataclass(frozen=True)
class SlurmOptions:
    """The thirteen flags of a SLURM submission, received as one `slurm` argument."""

    slurm: Annotated[bool, typer.Option(
        "--slurm", help="Submit to SLURM (one job array) instead of training here.", rich_help_panel=SLURM)] = False
    cluster: Annotated[str | None, typer.Option(
        "--cluster", help="Cluster profile: a packaged name (`lstmgan configs`) or a YAML file; default: built-in "
        "(default partition, 1 CPU, 60 min).", rich_help_panel=SLURM)] = None
    partition: Annotated[str | None, typer.Option("--partition", help="SLURM partition.", rich_help_panel=SLURM)] = None
    account: Annotated[str | None, typer.Option("--account", help="SLURM account.", rich_help_panel=SLURM)] = None
    qos: Annotated[str | None, typer.Option("--qos", help="SLURM QOS.", rich_help_panel=SLURM)] = None
    time: Annotated[int | None, typer.Option("--time", help="Time limit per task, minutes.",
                                             rich_help_panel=SLURM)] = None
    gpus: Annotated[int | None, typer.Option("--gpus", help="GPUs per task.", rich_help_panel=SLURM)] = None
    cpus: Annotated[int | None, typer.Option("--cpus", help="CPUs per task.", rich_help_panel=SLURM)] = None
    mem: Annotated[float | None, typer.Option("--mem", help="Memory per task, GB.", rich_help_panel=SLURM)] = None
    constraint: Annotated[str | None, typer.Option(
        "--constraint", help="Node features (sbatch --constraint).", rich_help_panel=SLURM)] = None
    container: Annotated[Runtime | None, typer.Option(
        "--container", help="Run each task in a container.", rich_help_panel=SLURM)] = None
    image: Annotated[str | None, typer.Option(
        "--image", help="Container image (.sif file or image reference).", rich_help_panel=SLURM)] = None
    wait: Annotated[bool, typer.Option(
        "--wait", help="Block until all tasks end; exit 1 if any failed.", rich_help_panel=SLURM)] = False

    def request(self) -> SlurmRequest | None:
        """The submission asked for (profile < flags, validated), or None to train here."""
        flags = {"partition": self.partition, "account": self.account, "qos": self.qos, "time": self.time,
                 "gpus": self.gpus, "cpus": self.cpus, "mem": self.mem, "constraint": self.constraint,
                 "container.runtime": value(self.container), "container.image": self.image}
        if not self.slurm:
            given = [f"--{k.split('.')[-1].replace('runtime', 'container')}" for k, v in flags.items() if v is not None]
            given += [flag for flag, on in (("--cluster", self.cluster), ("--wait", self.wait)) if on]
            if given:
                raise UserError(f"{', '.join(given)} only apply to SLURM submissions; add --slurm")
            return None
        from lstmgan.runner.slurm import load_profile

        path = catalog.find(self.cluster, "cluster") if self.cluster else None
        profile = load_profile(path, flags)
        if self.image and profile.container.runtime == "none":
            raise UserError("--image needs a container runtime: add --container apptainer (or singularity, pyxis) "
                            "or set container.runtime in the cluster profile")
        return SlurmRequest(profile, str(path) if path else "built-in defaults", self.wait)


def with_options(cls: type, arg: str, *, omit: Sequence[str] = (), defaults: dict[str, Any] | None = None,
                 helps: dict[str, str] | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a command the fields of dataclass `cls` as options; it receives them as one `arg` (a `cls`).

    `omit` leaves fields out (they keep the dataclass default), `defaults` and `helps` change a field's
    default or help text for this command."""
    defaults, helps = defaults or {}, helps or {}
    hints = typing.get_type_hints(cls, include_extras=True)
    fields = [f for f in dataclasses.fields(cls) if f.name not in omit]
    params = [pyinspect.Parameter(f.name, pyinspect.Parameter.KEYWORD_ONLY, default=defaults.get(f.name, f.default),
                                  annotation=_with_help(hints[f.name], helps.get(f.name))) for f in fields]

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        own = pyinspect.signature(command, eval_str=True)

        @functools.wraps(command)
        def wrapper(**kwargs: Any) -> Any:
            options = cls(**{f.name: kwargs.pop(f.name) for f in fields})
            return command(**kwargs, **{arg: options})

        keep = [p.replace(kind=pyinspect.Parameter.KEYWORD_ONLY) for p in own.parameters.values() if p.name != arg]
        wrapper.__signature__ = own.replace(parameters=keep + params)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in keep + params}
        return wrapper

    return decorate


def _with_help(hint: Any, text: str | None) -> Any:
    if text is None:
        return hint
    base, info, *_ = typing.get_args(hint)
    info = copy.copy(info)
    info.help = text
    return Annotated[base, info]


# --- options several commands share ------------------------------------------------------------------------------

def epochs_opt(default: int) -> Any:
    """--epochs, its help naming the default that applies (the config's, unless a YAML or --set says else)."""
    return Annotated[int | None, typer.Option("--epochs", help=f"Training epochs (default: the config's, {default}).",
                                              rich_help_panel=TRAINING)]

DatasetOpt = Annotated[Dataset | None, typer.Option(help="Default: the config's, mnist.", rich_help_panel=TRAINING)]
DataDirOpt = Annotated[Path | None, typer.Option(help="Folder with the IDX files (torchvision layout or flat); "
                                                 "default: the config's, data.", rich_help_panel=TRAINING)]
DownloadOpt = Annotated[bool, typer.Option("--download", help="Let torchvision download the data.",
                                           rich_help_panel=TRAINING)]
DeviceOpt = Annotated[Device, typer.Option(help="auto = CUDA when present.", show_default=True)]
