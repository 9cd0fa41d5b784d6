"""lstmgan: palindromes (LSTM vs vanilla RNN) and an MNIST GAN as reproducible batch experiments."""

__version__ = "0.1.0"
