"""cnn-cli: a command-line trainer for convolutional networks with Numba kernels."""

__version__ = "0.1.0"
