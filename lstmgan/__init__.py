"""lstmgan: palindromes (LSTM vs vanilla RNN) and an MNIST GAN as reproducible batch experiments."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("lstmgan")  # one source: pyproject.toml's version, via the installed metadata
except PackageNotFoundError:  # imported from a checkout that was never installed
    __version__ = "0+unknown"
