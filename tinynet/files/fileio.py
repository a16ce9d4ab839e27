"""Writing files so that nothing is lost: write a temporary file in the same
directory, flush and fsync it, then rename it over the target.

A rename within one directory is atomic on POSIX and Windows, so a reader (or a
crash, or a kill in the middle of a save) sees either the old file whole or the
new file whole, never half of one. The temporary file is removed if anything
fails, and one that a killed process left is removed by the next save of that file.
The file keeps the mode of the one it replaces, or gets the mode any new file gets
(0666 less the umask), as ``open`` would give it; a symbolic link is written through.
"""

from __future__ import annotations

import errno
import hashlib
import os
import socket
import stat
import tempfile
import time
from contextlib import contextmanager

LEGACY_STALE_AFTER_S = 3600  # earlier tinynet named its temporary files without host or pid


def file_path(path, who: str) -> str:
    """``path`` as a str, or a clear TypeError naming ``who`` (a str, bytes or os.PathLike is a
    path; bytes are decoded as the file system does)."""
    if isinstance(path, bytes):
        return os.fsdecode(path)
    try:
        return os.fspath(path)
    except TypeError:
        raise TypeError(
            f"{who} expects a file path (a str or os.PathLike, such as 'model.npz'), got {type(path).__name__} {path!r}"
        ) from None


def _umask() -> int:
    mask = os.umask(0)  # the only way to read it is to set it; put it straight back
    os.umask(mask)
    return mask


def _host() -> str:
    """A short tag of this machine, so that a folder shared between machines (NFS, a container's
    volume) never has one machine's live temporary file taken for a dead process's."""
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def _temporary_prefix(target: str) -> str:
    """``.<name>.<host>-<pid>.``: a temporary file of ours, the machine and the process writing it."""
    return f".{os.path.basename(target)}.{_host()}-{os.getpid()}."


def _legacy(rest: str) -> bool:
    """``<8 random>.tmp``: the name ``tempfile.mkstemp`` gave the temporary files of older tinynet."""
    return len(rest) == 12 and rest.endswith(".tmp") and all(c.isalnum() or c == "_" for c in rest[:8])


def _remove_stale(target: str):
    """Remove the temporary files an earlier save of ``target`` left behind when its process
    was killed: ``.<name>.<host>-<pid>.<random>.tmp`` of this machine whose process is gone,
    and ``.<name>.<random>.tmp`` of older tinynet untouched for an hour. A live writer's stay."""
    directory, name = os.path.split(target)
    try:
        candidates = [e for e in os.scandir(directory or ".") if e.name.startswith(f".{name}.") and e.is_file()]
    except OSError:
        return
    for entry in candidates:
        rest = entry.name[len(name) + 2 :]
        if _legacy(rest):
            try:
                if time.time() - entry.stat().st_mtime > LEGACY_STALE_AFTER_S:
                    os.unlink(entry.path)
            except OSError:
                pass
            continue
        middle = rest.split(".")  # <host>-<pid>.<random>.tmp
        if len(middle) != 3 or middle[2] != "tmp" or not middle[0].startswith(_host() + "-"):
            continue  # not ours, or another machine's: its writer may be alive there
        pid = middle[0][len(_host()) + 1 :]
        if not pid.isdigit() or int(pid) == os.getpid() or _alive(int(pid)):
            continue
        try:
            os.unlink(entry.path)
        except OSError:
            pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # someone else's process: leave its file alone
    return True


class SaveError(OSError):
    """A file could not be written; the message names the path the user gave and what was wrong,
    and says that any file already there is unchanged."""


def _target(path) -> str:
    """The file a save of ``path`` writes: the path itself, or a symbolic link's target (the
    link stays a link, as ``open(path, "w")`` would leave it). Bad paths are refused by name."""
    given = file_path(path, "save")
    if not given:
        raise SaveError(errno.ENOENT, "cannot save to an empty path; give a file name such as 'model.npz'")
    if given.endswith(("/", os.sep)):
        raise SaveError(errno.EISDIR, f"cannot save to {given}: it names a folder; give a file name such as model.npz")
    link = os.path.islink(given)
    target = os.path.realpath(given) if link else os.path.abspath(given)
    if link and not os.path.isdir(os.path.dirname(target)):  # open() would not create a link's folders either
        raise SaveError(errno.ENOENT, f"cannot save to {given}: it is a link to {target}, whose folder does not exist")
    if os.path.isdir(target):
        raise SaveError(errno.EISDIR, f"cannot save to {given}: it is a folder; give a file name inside it")
    if os.path.exists(target) and not os.path.isfile(target):
        raise SaveError(errno.EINVAL, f"cannot save to {given}: it is not a regular file")
    return target


@contextmanager
def atomic_write(path, mode: str = "wb"):
    """``with atomic_write(path) as f: f.write(...)`` replaces ``path`` only on success.

    The new file keeps the mode of the file it replaces (a new one gets 0666 less the
    umask); a symbolic link is written through to its target. Any failure (a full disk, a
    kill) leaves the old file whole; a failed save removes its temporary file, and the next
    save of the same file removes those a killed process left. Errors are :class:`SaveError`
    naming ``path``."""
    given = file_path(path, "save")
    target = _target(given)
    directory = os.path.dirname(target)
    previous = "the file already there is unchanged" if os.path.exists(target) else "nothing was written"
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as e:
        raise SaveError(e.errno, f"cannot save to {given}: cannot create its folder {directory} ({e.strerror})") from e
    _remove_stale(target)
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=_temporary_prefix(target), suffix=".tmp")
    except OSError as e:
        raise SaveError(e.errno, f"cannot save to {given}: {e.strerror} in {directory}; {previous}") from e
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        try:
            keep = stat.S_IMODE(os.stat(target).st_mode)  # re-saving keeps the file's permissions
        except FileNotFoundError:
            keep = 0o666 & ~_umask()  # mkstemp makes it 0600; a new file gets the usual mode
        os.chmod(tmp, keep)
        os.replace(tmp, target)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(e, OSError) and not isinstance(e, SaveError):
            raise SaveError(e.errno, f"could not write {given}: {e.strerror or e}; {previous}") from e
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
            kind = "a FIFO" if stat.S_ISFIFO(mode) else "a directory" if stat.S_ISDIR(mode) else "a device or socket"
            raise OSError(f"{path}: {kind}, not a regular file; refused before reading")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
