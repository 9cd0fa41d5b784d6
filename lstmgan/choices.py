"""The choices and bounds of every setting, and nothing that is slow to import: the CLI's `--help` reads
them without loading pydantic (lstmgan.config builds the typed settings from them)."""

from __future__ import annotations

from contextvars import ContextVar

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


# σ(±10) is within 5e-5 of 0 or 1: a forget gate pinned shut or open; beyond that only the typo is new.
MAX_FORGET_BIAS = 10.0


MAX_GRID = 100  # a sample grid of grid × grid images: 10,000 images, a 2800-pixel PNG at the bound


# The settings a sweep varies through its own lists; a grid or `--set` cannot vary them as well.
SWEEP_AXES = {"model": "--models", "length": "--lengths", "seed": "--seeds"}


# The runs one command may plan: a typo in a --grid (or a seed range) is refused in one line before a
# million configs are built. The CLI's --max-runs raises it for the command it is given to (allow_runs).
MAX_RUNS = 10_000
_max_runs: ContextVar[int] = ContextVar("max_runs", default=MAX_RUNS)


def allow_runs(cap: int) -> int:
    """Let commands in this context plan up to `cap` runs (the --max-runs callback); returns `cap`."""
    _max_runs.set(cap)
    return cap


def max_runs() -> int:
    return _max_runs.get()
