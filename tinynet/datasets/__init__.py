"""Data sets: MNIST (and the IDX format it comes in)."""

from . import idx, mnist
from .idx import DatasetError, read_idx, write_idx

__all__ = ["DatasetError", "idx", "mnist", "read_idx", "write_idx"]
