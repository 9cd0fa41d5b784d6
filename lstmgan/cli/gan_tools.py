"""The GAN tools: classifier (train or show the CNN that scores samples), interpolate and sample (read a
trained GAN run). They run here, at once; only the training commands go through the pipeline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lstmgan.cli import display
from lstmgan.cli.display import progress_display, run_reporter, say, warn
from lstmgan.cli.options import (
    WANDB,
    Dataset,
    Device,
    DeviceOpt,
    Method,
    WandbMode,
    check_seed,
    require,
    torch_device,
    value,
)
from lstmgan.errors import UserError
from lstmgan.pipeline import wandb_where  # loaded for --help anyway: the training commands import the pipeline

app = typer.Typer()
PANEL = "GAN tools"

RunDirArg = Annotated[Path, typer.Argument(help="A GAN run folder, e.g. runs/gan/mnist-s0.")]
MAX_DRAW = 100_000  # 28×28 float32: about 300 MB in memory at this bound


@app.command(rich_help_panel=PANEL)
def classifier(
    dataset: Annotated[Dataset, typer.Option(show_default=True)] = Dataset.mnist,
    data_dir: Annotated[Path, typer.Option(help="Folder with the IDX files.", show_default=True)] = Path("data"),
    download: Annotated[bool, typer.Option("--download", help="Let torchvision download the data.")] = False,
    epochs: Annotated[int | None, typer.Option(help="Training epochs (default: as `gan` trains it).")] = None,
    out: Annotated[Path, typer.Option("--out", help="Saved as OUT/classifiers/<dataset>.pt.",
                                      show_default=True)] = Path("runs"),
    device: DeviceOpt = Device.auto,
    force: Annotated[bool, typer.Option("--force", help="Retrain even if a classifier is cached.")] = False,
) -> None:
    """Train (or show) the small CNN that scores GAN samples: classifier-FID, class histograms."""
    from lstmgan.fs import check_real_folders
    from lstmgan.gan.classifier import TRAIN_EPOCHS, cache_path, cached_classifier, data_text, train_and_save
    from lstmgan.gan.data import load_images

    require(epochs is None or epochs >= 1, "--epochs", "at least 1", epochs)
    name, path = value(dataset), cache_path(out, value(dataset))
    check_real_folders(out, path.parent)  # OUT/classifiers is lstmgan's: a link is refused before training
    dev = torch_device(device)
    train, test = (load_images(name, data_dir, train=split, download=download, device=dev) for split in (True, False))
    if not force and (found := cached_classifier(path, name, train, test, "cpu", warn=warn)):
        return say(f"{path}: {name} test accuracy {100 * found[1]['test_accuracy']:.2f} % (cached, trained on "
                   f"{data_text(found[1])}; --force retrains)")
    with progress_display(False, 1) as progress:
        _, meta = train_and_save(name, train, test, path, epochs=epochs or TRAIN_EPOCHS, device=dev,
                                 progress=run_reporter(progress, 0, f"{name} classifier"))
    say(f"{path}: {name} test accuracy {100 * meta['test_accuracy']:.2f} % (trained on {data_text(meta)})")


@app.command(rich_help_panel=PANEL)
def interpolate(
    run_dir: RunDirArg,
    steps: Annotated[int, typer.Option(help="Intermediate points (the strip has steps + 2 images).")] = 7,
    method: Annotated[Method, typer.Option(show_default=True)] = Method.lerp,
    pairs: Annotated[int, typer.Option(help="Number of strips.")] = 1,
    seed: Annotated[int, typer.Option(help="Seed for drawing latent candidates.")] = 0,
    min_confidence: Annotated[float, typer.Option(help="Classifier confidence both ends need.")] = 0.9,
    wandb: Annotated[WandbMode, typer.Option(help="Log the strips to the run's W&B run.",
                                             rich_help_panel=WANDB)] = WandbMode.auto,
    wandb_project: Annotated[str, typer.Option(help="W&B project.", rich_help_panel=WANDB)] = "lstmgan",
    wandb_entity: Annotated[str | None, typer.Option(help="W&B entity.", rich_help_panel=WANDB)] = None,
    device: DeviceOpt = Device.auto,
) -> None:
    """Interpolate in latent space between two samples of different classes; a strip per pair."""
    from lstmgan.config import TrackingConfig
    from lstmgan.gan.posthoc import load_trained, make_strips
    from lstmgan.tracking.publish import publish

    require(steps >= 1, "--steps", "at least 1", steps)
    require(pairs >= 1, "--pairs", "at least 1", pairs)
    require(0 < min_confidence <= 1, "--min-confidence", "in (0, 1]", min_confidence)
    check_seed(seed)
    tracking = TrackingConfig(mode=value(wandb), project=wandb_project, entity=wandb_entity)
    dev = torch_device(device)
    strips = make_strips(load_trained(run_dir, dev), steps=steps, method=value(method), pairs=pairs, seed=seed,
                         min_confidence=min_confidence, device=dev)
    publish(run_dir, tracking)
    for strip in strips:
        say(f"{strip['png']}: {' → '.join(str(c) for c in strip['classes'])}")
    wandb_where(display, [run_dir], tracking.mode)


@app.command(rich_help_panel=PANEL)
def sample(
    run_dir: RunDirArg,
    n: Annotated[int, typer.Option("--n", help="Number of images.")] = 64,
    out: Annotated[Path, typer.Option("--out", help="samples.npy (N×28×28 float32 in [-1, 1]) or a .png grid.",
                                      show_default=True)] = Path("samples.npy"),
    seed: Annotated[int, typer.Option(help="Seed for z.")] = 0,
    device: DeviceOpt = Device.auto,
    force: Annotated[bool, typer.Option("--force", help="Overwrite OUT if it exists.")] = False,
) -> None:
    """Draw N samples from a trained GAN run into a .npy array or a .png grid."""
    from lstmgan.fs import check_writable
    from lstmgan.gan.posthoc import load_trained, write_samples

    require(1 <= n <= MAX_DRAW, "--n", f"between 1 and {MAX_DRAW}", n, "; draw larger sets in several files")
    check_seed(seed)
    if out.suffix not in (".npy", ".png"):
        raise UserError(f"--out {out} must end in .npy (array) or .png (grid)")
    if out.is_dir():  # even with --force: a folder is never replaced by a file
        raise UserError(f"--out {out} is a folder; give a file path ending in .npy or .png")
    if out.exists() and not force:
        raise UserError(f"{out} exists; choose another --out or pass --force to overwrite it")
    check_writable(out.parent)
    dev = torch_device(device)
    say(f"{n} samples → {write_samples(load_trained(run_dir, dev), n, seed, out, dev)}")
