"""One command at a time per output folder: :func:`output_lock`.

``layerscope run`` and ``layerscope operando`` hold an exclusive lock on ``OUT/.layerscope.lock``
(``filelock``: an OS file lock, released by the OS when the process ends, even on ``kill -9``)
while they write into ``OUT``. A second command on the same folder stops at once with
:class:`OutputInUse` (an :class:`~layerscope.InputError`: exit status 2 and one clear line)
instead of interleaving its writes with the first one's.

A lock left by a killed command is never stale: the OS drops it with the process (the lock file
itself stays, unlocked, and is reused). Having the lock, the command removes the temporary files
that a killed predecessor left half written (:func:`layerscope._io.remove_partial`). ``layerscope
run``, ``operando``, ``fourd`` and ``haadf`` hold it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from layerscope._errors import InputError
from layerscope._io import _umask, remove_partial

LOCK_NAME = ".layerscope.lock"


class OutputInUse(InputError):
    """The output folder is being written by another layerscope command."""


@contextlib.contextmanager
def output_lock(out_dir, command: str) -> Iterator[Path]:
    """Hold the output folder's lock for the ``with`` block, or raise :class:`OutputInUse`."""
    from filelock import FileLock, Timeout

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / LOCK_NAME
    lock = FileLock(str(path), timeout=0, mode=0o666 & ~_umask())
    try:
        lock.acquire()
    except Timeout:
        raise OutputInUse(f"the output folder is in use by another layerscope command (its lock "
                          f"{LOCK_NAME} is held); wait for that one to finish, or give another --out "
                          f"to `layerscope {command}`", path=out) from None
    try:
        remove_partial(out)
        yield out
    finally:
        lock.release()
