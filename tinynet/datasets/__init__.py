"""Data sets, loaded as Keras's ``keras.datasets`` loads them: MNIST, Fashion-MNIST and
CIFAR-10 (and the IDX format the first two come in). Each ``load_data()`` looks in the
same places (:mod:`tinynet.datasets.sources`): the path given, ``$TINYNET_DATA_DIR/<name>/``,
the user cache ``~/.cache/tinynet/<name>``, and a checked download into it."""

from . import cifar10, fashion_mnist, idx, mnist
from .idx import DatasetError, read_idx, write_idx

__all__ = ["DatasetError", "cifar10", "fashion_mnist", "idx", "mnist", "read_idx", "write_idx"]
