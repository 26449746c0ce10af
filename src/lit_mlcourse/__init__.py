"""lit_mlcourse: PyTorch Lightning training for the classic tasks of a machine-learning course."""

__version__ = "0.1.0"
