"""Writing files so that nothing is lost: write a temporary file in the same
directory, flush and fsync it, then rename it over the target.

A rename within one directory is atomic on POSIX and Windows, so a reader (or a
crash, or a kill in the middle of a save) sees either the old file whole or the
new file whole, never half of one. The temporary file is removed if anything
fails. The file ends with the mode any new file gets (0666 less the umask), as
``open`` would give it.
"""

from __future__ import annotations

import os
import stat
import tempfile
from contextlib import contextmanager


def _umask() -> int:
    mask = os.umask(0)  # the only way to read it is to set it; put it straight back
    os.umask(mask)
    return mask


@contextmanager
def atomic_write(path, mode: str = "wb"):
    """``with atomic_write(path) as f: f.write(...)`` replaces ``path`` only on success."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it 0600; a saved file gets the usual mode
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def open_regular(path):
    """Open ``path`` for reading in binary, only if it is a regular file (or a link to one).

    A FIFO, a device or a socket is refused with ``OSError`` before anything is read:
    reading one can block forever (a FIFO with no writer) or never end (``/dev/zero``).
    The file is opened without blocking and checked on the open descriptor, so nothing
    can swap it between the check and the read.
    """
    path = os.fspath(path)
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = "a FIFO" if stat.S_ISFIFO(mode) else "a directory" if stat.S_ISDIR(mode) else "not a regular file"
            raise OSError(f"{path}: {kind}, not a regular file; refused before reading")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
