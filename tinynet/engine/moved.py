"""The old names of modules that moved into ``tinynet.engine`` and ``tinynet.files``.

``import tinynet.fast``, ``from tinynet import training`` and ``tinynet.keras_compat``
still work: each gives the module under its new name, with a DeprecationWarning that
names it. Nothing else is imported under an old name (CHANGELOG.md lists the moves).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings

MOVED = {
    "tinynet.fast": "tinynet.engine.twins",
    "tinynet.training": "tinynet.engine.loop",
    "tinynet.graphs": "tinynet.engine.graphs",
    "tinynet.kernels": "tinynet.engine.kernels",
    "tinynet.threads": "tinynet.engine.threads",
    "tinynet.progress": "tinynet.engine.progress",
    "tinynet.summary": "tinynet.engine.summary",
    "tinynet.optimizer_state": "tinynet.engine.optimizer_state",
    "tinynet.model_api": "tinynet.engine.keras_api",
    "tinynet.keras_compat": "tinynet.engine.keras_rules",
    "tinynet.model": "tinynet.sequential",
    "tinynet.fileio": "tinynet.files.fileio",
    "tinynet.archives": "tinynet.files.archives",
    "tinynet.keras_files": "tinynet.files.keras_format",
}


def load(old: str):
    """The module ``old`` moved to, with a DeprecationWarning that gives the new name."""
    new = MOVED[old]
    warnings.warn(f"{old} is now {new}; import it under that name", DeprecationWarning, stacklevel=3)
    return importlib.import_module(new)


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports an old name as the module under its new one (the same module object)."""

    def find_spec(self, name, path=None, target=None):
        return importlib.machinery.ModuleSpec(name, self) if name in MOVED else None

    def create_module(self, spec):
        return load(spec.name)

    def exec_module(self, module):
        # already imported under its new name, nothing to run; importlib has set its __spec__
        # to the old name's: put its own back (found again by the new name, so threads that
        # import two old names at once cannot mix them up)
        module.__spec__ = importlib.machinery.PathFinder.find_spec(module.__name__, _search_path(module.__name__))


def _search_path(name):
    package = name.rpartition(".")[0]
    return importlib.import_module(package).__path__


def install():
    if not any(isinstance(finder, _Finder) for finder in sys.meta_path):
        sys.meta_path.append(_Finder())
