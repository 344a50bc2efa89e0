"""lstmstream: a streaming online-learning daemon, one stateful NumPy LSTM per stream."""

__version__ = "0.1.0"
