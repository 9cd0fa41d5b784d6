"""lstmgan: palindromes (LSTM vs vanilla RNN) and an MNIST GAN as reproducible batch experiments."""


def __getattr__(name: str) -> str:
    """`lstmgan.__version__`, read when asked for: importlib.metadata would cost every `--help` 50 ms."""
    if name != "__version__":
        raise AttributeError(f"module 'lstmgan' has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("lstmgan")  # one source: pyproject.toml's version, via the installed metadata
    except PackageNotFoundError:  # imported from a checkout that was never installed
        return "0+unknown"
