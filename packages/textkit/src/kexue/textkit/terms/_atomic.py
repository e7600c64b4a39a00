"""Atomic file writes: a temporary file in the target's folder, then ``os.replace`` (private).

The temporary file is removed on any failure before the rename (full disk, ``EFBIG`` under
``ulimit -f``, an exception raised by a signal handler, ``KeyboardInterrupt``), so a write either
leaves the complete new file or the old state of the folder. Standard library only.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from typing import IO, Any

__all__ = ["atomic_file", "make_temp", "signals_deferred", "temp_prefix"]


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM back while a temporary file is created and handed to its cleanup, so
    an interrupt cannot land between the two (it is delivered when the block ends)."""
    if not hasattr(signal, "pthread_sigmask"):  # not POSIX: nothing to hold back
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def temp_prefix(name: str) -> str:
    """Prefix of a hidden temporary file for ``name`` in the same folder: the name is cut to 200
    bytes, so prefix + 12 random characters + ``.tmp`` stays under NAME_MAX (255)."""
    return "." + name.encode("utf-8", "surrogateescape")[:200].decode("utf-8", "ignore") + "."


def make_temp(folder: str | os.PathLike[str], name: str) -> tuple[int, str]:
    """Create a new, empty, private (0600) temporary file for ``name`` in ``folder``: its
    descriptor and path (``tempfile.mkstemp`` without importing ``tempfile`` and ``random``)."""
    for _ in range(100):
        path = os.path.join(folder, f"{temp_prefix(name)}{os.urandom(6).hex()}.tmp")
        try:
            return os.open(
                path, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600
            ), path
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name in {folder}")


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike[str], mode: str = "wb", **kwargs: Any) -> Iterator[IO[Any]]:
    """Open a temporary file next to ``path`` for writing; on a clean exit it replaces ``path``.

    Arguments:
        path: the file to (re)place; its folder must exist.
        mode: ``"wb"`` or ``"w"`` (then ``kwargs`` such as ``encoding`` go to :func:`os.fdopen`).

    Raises:
        OSError: from creating, writing, closing or renaming the temporary file (which is removed).
    """
    folder, name = os.path.split(os.fspath(path))
    fd, tmp = -1, None
    try:
        with signals_deferred():  # a pending interrupt arrives inside the try: tmp is removed
            fd, tmp = make_temp(folder or ".", name)
        os.fchmod(fd, 0o666 & ~_umask())  # the permissions an ordinary open() would give
        with os.fdopen(fd, mode, **kwargs) as f:
            fd = -1
            yield f
        os.replace(tmp, path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        raise
